"""Fig 9, attention patterns per layer: the fixed BigBird and Longformer block patterns beside
the exposer's true mask and the predictor's mask, at the exposer's per-layer density.

    python -c "from benchlab import zoo; from benchlab.long_exposure.opcases import corpus_rows; \
from benchlab.long_exposure.patterns import *; m = zoo.load('opt-tiny').eval(); \
rows = corpus_rows('opt-tiny', 12, 128); print(pattern_study(m, rows[8:], PatternConfig(), \
rows[:8]))"

Masks are causal bool (B, H, nb, nb) over 16-token blocks, inside the documents of `docs`.
    longformer  a causal window of w blocks and the first `n_global` blocks of each row (or
                document) as global keys; w the one whose density is closest to the target
    bigbird     window (the widest up to 3 blocks below the target) + the same globals + random
                causal blocks, exactly as many as the target needs, spread over the query rows
Per layer, for pattern in PATTERNS (and `<name>_mean` over layers):
    <pattern>_density   kept / causal blocks
    <pattern>_mass      share of the layer's true attention mass inside the kept blocks
    <pattern>_speedup   SDPA forward + backward time over the block-sparse operator's (paired)
"""

from dataclasses import dataclass

import torch

from benchlab.core import interleave
from benchlab.core.stats import paired_ratio
from benchlab.core.timing import forward_backward

from . import exposer, ops_attn, predictors

PATTERNS = ("exposer", "predictor", "longformer", "bigbird")


def _allowed(B: int, L: int, block: int, docs, device) -> torch.Tensor:
    """(B, nb, nb) bool: causal blocks, inside the documents when `docs` is given."""
    from .documents import block_mask

    nb = -(-L // block)
    if docs is None:
        return torch.ones(nb, nb, dtype=torch.bool, device=device).tril().expand(B, nb, nb)
    return block_mask(docs.to(device), block)


def _doc_starts(B: int, L: int, block: int, docs, device) -> torch.Tensor:
    """(B, nb) bool: blocks holding the first token of a row or of a document."""
    nb = -(-L // block)
    starts = torch.zeros(B, nb, dtype=torch.bool, device=device)
    starts[:, 0] = True
    if docs is not None:
        d = docs.to(device)
        new = torch.nonzero(d[:, 1:] != d[:, :-1])  # (n, 2): row, token - 1
        starts[new[:, 0], (new[:, 1] + 1) // block] = True
    return starts


def _global_keys(starts: torch.Tensor, n_global: int) -> torch.Tensor:
    """(B, nb) bool: the first n_global blocks from every start block."""
    g = starts.clone()
    for s in range(1, n_global):
        g[:, s:] |= starts[:, :-s]
    return g


def _window(nb: int, w: int, device=None) -> torch.Tensor:
    """(nb, nb) bool: i - w < j <= i."""
    i = torch.arange(nb, device=device)
    d = i[:, None] - i[None, :]
    return (d >= 0) & (d < w)


def _fixed(B: int, L: int, w: int, n_global: int, block: int, docs, device) -> torch.Tensor:
    """(B, nb, nb) window + globals, inside the allowed blocks."""
    nb = -(-L // block)
    glob = _global_keys(_doc_starts(B, L, block, docs, device), n_global)
    return (_window(nb, w, device)[None] | glob[:, None, :]) & _allowed(B, L, block, docs, device)


def window_for(B: int, L: int, density: float, *, n_global: int = 1, block: int = ops_attn.BLOCK,
               docs=None, device=None) -> int:
    """The window w (blocks, >= 1) whose Longformer mask density is closest to `density`."""
    nb = -(-L // block)
    gaps = [abs(ops_attn.block_density(_fixed(B, L, w, n_global, block, docs, device)) - density)
            for w in range(1, nb + 1)]
    return 1 + min(range(nb), key=gaps.__getitem__)


def longformer_mask(B: int, H: int, L: int, density: float, *, block: int = ops_attn.BLOCK,
                    docs=None, n_global: int = 1, device=None) -> torch.Tensor:
    """Causal sliding window + global blocks at the causal density closest to `density`."""
    w = window_for(B, L, density, n_global=n_global, block=block, docs=docs, device=device)
    m = _fixed(B, L, w, n_global, block, docs, device)
    return m[:, None].expand(B, H, *m.shape[1:]).clone()


def _row_rank(u: torch.Tensor) -> torch.Tensor:
    """Rank of every entry within its row (last dim) by ascending value."""
    return u.argsort(-1).argsort(-1)


def bigbird_mask(B: int, H: int, L: int, density: float, *, block: int = ops_attn.BLOCK,
                 seed: int = 0, docs=None, n_global: int = 1, window: int = 3,
                 device=None) -> torch.Tensor:
    """Causal window (the widest up to `window` blocks that leaves room) + globals + random
    blocks, exactly enough for the batch to reach `density`, round-robin over the query rows
    (rows of short documents with no room left leave theirs to others)."""
    nb = -(-L // block)
    fits = [w for w in range(2, window + 1)
            if ops_attn.block_density(_fixed(B, L, w, n_global, block, docs, device)) <= density]
    w = max(fits, default=1)
    base = _fixed(B, L, w, n_global, block, docs, device)[:, None].expand(B, H, nb, nb)
    cand = _allowed(B, L, block, docs, device)[:, None] & ~base  # (B, H, nb, nb)
    need = round(density * B * H * nb * (nb + 1) / 2)  # kept blocks of the whole batch
    extra = max(0, need - int(base.sum()))
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(B, H, nb, nb, generator=gen).to(device or "cpu")
    u = torch.where(cand, u, torch.full_like(u, 2.0))
    prio = torch.where(cand, _row_rank(u) + u, torch.full_like(u, float("inf")))
    order = _row_rank(prio.flatten()).view(B, H, nb, nb)  # rank over all query rows
    return base | (cand & (order < extra))


def _kept_and_total(probs: torch.Tensor, mask: torch.Tensor, block: int):
    """(kept, total) attention mass (B, H, L) of each query: inside the kept blocks, and all."""
    tm = exposer.block_sum(probs, block, -1)  # (B, H, L, nb)
    rows = mask.repeat_interleave(block, -2)[..., :probs.shape[-1], :].to(tm.dtype)
    return (tm * rows).sum(-1), tm.sum(-1)


def mass_covered(probs: torch.Tensor, mask: torch.Tensor, block: int = ops_attn.BLOCK) -> float:
    """Share of the attention probability mass (B, H, L, L) inside the kept blocks (B, H, nb,
    nb): sum over queries of their kept mass / their total mass."""
    kept, total = _kept_and_total(probs, mask, block)
    return float(kept.sum() / total.sum())


def query_mass(probs: torch.Tensor, mask: torch.Tensor,
               block: int = ops_attn.BLOCK) -> torch.Tensor:
    """(B, H, L) kept share of each query's attention mass (0 for queries with none)."""
    kept, total = _kept_and_total(probs, mask, block)
    return kept / total.clamp_min(1e-30)


@dataclass(frozen=True)
class PatternConfig:
    mass: float = 0.95  # the exposer's attention mass target (its true mask)
    mlp_rel: float = 0.05
    mlp_block: int = 64
    rank: int = 16  # attention predictor rank per head
    steps: int = 300  # predictor training steps
    rounds: int = 5  # interleaved timed rounds per layer
    warmup: int = 1
    seed: int = 0  # BigBird's random blocks, the timed v and output grads
    device: str = "cpu"  # where the operators are timed


def layer_masks(cap, i: int, exposure, preds, cfg: PatternConfig) -> dict:
    """{pattern: (B, H, nb, nb) bool} of captured layer i."""
    true = exposure.layers[i].attn_block_mask
    B, H, nb, _ = true.shape
    L, docs = cap.q[i].shape[-2], cap.docs.ids
    d = ops_attn.block_density(true)
    return {"exposer": true, "predictor": preds.attn(i, cap.attn_in[i], cap.docs),
            "longformer": longformer_mask(B, H, L, d, docs=docs),
            "bigbird": bigbird_mask(B, H, L, d, seed=cfg.seed + i, docs=docs)}


def speedups(q, k, masks: dict, docs, cfg: PatternConfig) -> dict:
    """{pattern: SDPA / block-sparse forward + backward time}, timed side by side on cfg.device."""
    dev = cfg.device
    gen = torch.Generator().manual_seed(cfg.seed)
    q, k = (t.float().to(dev).requires_grad_(True) for t in (q.clone(), k.clone()))
    v = torch.randn(q.shape, generator=gen).to(dev).requires_grad_(True)
    go = torch.randn(q.shape, generator=gen).to(dev)
    docs = docs.to(dev)
    fns = {"sdpa": forward_backward(lambda: ops_attn.sdpa_attention(q, k, v), (q, k, v), go)}
    for name, m in masks.items():
        m = m.to(dev)
        fns[name] = forward_backward(
            lambda m=m: ops_attn.block_sparse_attention(q, k, v, m, docs=docs, shortcut=False),
            (q, k, v), go)
    ts = interleave(fns, dev, warmup=cfg.warmup, rounds=cfg.rounds)
    return {name: paired_ratio(ts["sdpa"], ts[name]) for name in masks}


def pattern_study(model, ids: torch.Tensor, cfg: PatternConfig, train_ids: torch.Tensor) -> dict:
    """Per-layer density, mass covered and operator speedup of every pattern (module
    docstring) on packed rows `ids` (B, L); the predictor trains on `train_ids` (other rows)."""
    pcfg = predictors.PredictorConfig(mass=cfg.mass, mlp_rel=cfg.mlp_rel, rank=cfg.rank,
                                      steps=cfg.steps)
    preds = predictors.train_predictors(model, train_ids, mlp_block=cfg.mlp_block, cfg=pcfg)
    ecfg = exposer.ExposerConfig(mass=cfg.mass, mlp_block=cfg.mlp_block, mlp_rel=cfg.mlp_rel)
    cap = exposer.run_captured(model, ids)
    exposure = exposer.expose_captured(cap, ecfg)
    out = {f"{p}_{m}": [] for p in PATTERNS for m in ("density", "mass", "speedup")}
    for i in sorted(cap.q):
        probs = exposer.attention_probs(cap.q[i], cap.k[i], docs=cap.docs.ids)
        masks = layer_masks(cap, i, exposure, preds, cfg)
        sp = speedups(cap.q[i], cap.k[i], masks, cap.docs.ids, cfg)
        for p, m in masks.items():
            out[f"{p}_density"].append(ops_attn.block_density(m))
            out[f"{p}_mass"].append(mass_covered(probs, m))
            out[f"{p}_speedup"].append(sp[p])
    means = {f"{k}_mean": sum(v) / len(v) for k, v in out.items() if v}
    return {**out, **means, "layers": len(cap.q), "doc_density": cap.docs.density(ops_attn.BLOCK)}
