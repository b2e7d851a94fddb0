"""Break-even densities of the block-sparse operators, measured in the run that uses them.

    python -c "from benchlab.long_exposure.breakeven import *; \
print(attention(1, 4, 256, 32, rounds=2))"

For one shape, each operator's forward + input gradients are timed side by side with the dense
kernel the dispatcher falls back to (SDPA, the dense MLP) at a grid of random-mask densities.
The break-even is where the paired speedup crosses 1, interpolated between grid points (0.0:
never wins, 1.0: always). `attention` and `mlp` return (break_even, {density: speedup}).
"""

import numpy as np
import torch

from ..core.stats import paired_ratio
from ..core.timing import forward_backward, interleave
from . import ops_attn, ops_mlp

GRID = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9)


def crossing(curve: dict) -> float:
    """The density where speedup(density) falls through 1 (grid interpolation)."""
    pts = sorted(curve.items())
    if pts[0][1] < 1.0:
        return 0.0
    for (d0, s0), (d1, s1) in zip(pts, pts[1:], strict=False):
        if s1 < 1.0:
            return d0 + (s0 - 1.0) * (d1 - d0) / (s0 - s1)
    return 1.0


def attention(B, H, L, D, *, grid=GRID, rounds=3, seed=0, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, L, D, generator=gen).to(device).requires_grad_(True)
               for _ in range(3))
    g = torch.randn(B, H, L, D, generator=gen).to(device)
    fns = {"dense": forward_backward(lambda: ops_attn.sdpa_attention(q, k, v), (q, k, v), g)}
    for d in grid:
        nb = L // ops_attn.BLOCK
        sparsity = 1.0 - max(0.0, (d * nb * (nb + 1) / 2 - nb) / max(1, nb * (nb - 1) / 2))
        mask = ops_attn.random_block_mask(B, H, L, min(1.0, sparsity), generator=gen, device=device)
        fns[d] = forward_backward(
            lambda m=mask: ops_attn.block_sparse_attention(q, k, v, m, shortcut=False),
            (q, k, v), g)
    return _curve(fns, device, rounds)


def mlp(tokens, d, ffn, block, *, grid=GRID, rounds=3, seed=0, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, d, generator=gen).to(device).requires_grad_(True)
    w1 = (torch.randn(ffn, d, generator=gen) * d ** -0.5).to(device)
    w2 = (torch.randn(d, ffn, generator=gen) * ffn ** -0.5).to(device)
    b1, b2 = torch.zeros(ffn, device=device), torch.zeros(d, device=device)
    g = torch.randn(tokens, d, generator=gen).to(device)
    fns = {"dense": forward_backward(lambda: ops_mlp.dense_mlp(x, w1, b1, w2, b2), x, g)}
    for dens in grid:
        keep = ops_mlp.random_keep(ffn // block, 1.0 - dens, generator=gen).to(device)
        fns[dens] = forward_backward(
            lambda k=keep: ops_mlp.block_sparse_mlp(x, w1, b1, w2, b2, k, block), x, g)
    return _curve(fns, device, rounds)


def _curve(fns: dict, device, rounds: int) -> tuple[float, dict]:
    """{"dense": fn, density: fn} timed side by side -> (crossing, {density: paired speedup})."""
    ts = interleave(fns, device, warmup=1, rounds=rounds)
    curve = {d: paired_ratio(ts["dense"], ts[d]) for d in fns if d != "dense"}
    return crossing(curve), curve


def crossing_interval(base, times: dict, *, level: float = 0.95, n_resamples: int = 2000,
                      seed: int = 0) -> tuple[float, float, float]:
    """(break-even, lo, hi) of per-round `times` {density: seconds} against the baseline's
    `base` (the same rounds): `crossing` of the median paired speedups and its percentile
    bootstrap interval, resampling whole rounds."""
    b = np.asarray(base, float)
    t = {d: np.asarray(v, float) for d, v in times.items()}
    if any(v.shape != b.shape for v in t.values()):
        raise ValueError("crossing_interval: every density needs the baseline's rounds")

    def at(idx):
        return crossing({d: float(np.median(b[idx] / v[idx])) for d, v in t.items()})

    est = at(np.arange(b.size))
    if b.size < 2:
        return est, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    boots = [at(rng.integers(0, b.size, b.size)) for _ in range(n_resamples)]
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return est, float(lo), float(hi)
