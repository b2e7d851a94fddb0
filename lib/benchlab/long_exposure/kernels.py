"""Fig 10 (the step breakdown of every PEFT method) and Fig 12 (each sparse kernel on its own):
measure_breakdown and measure_kernel (measure.KINDS; figures: report.breakdown, report.kernels).

    python -c "from benchlab.core import Timer; from benchlab.long_exposure import CONFIGS; \
from benchlab.long_exposure.kernels import *; from benchlab.long_exposure.opcases import OpCase; \
print(measure_kernel(OpCase('k', 'kernel', 0.5, 256, 256, 1024, 64, 4, 64, 1), \
CONFIGS['tiny'], Timer()))"

Kernels (KERNELS) are the operators' own pieces, each against its dense counterpart: sdd
(kept blocks' scores), dsd (kept-block probabilities times V), fc1 and fc2 (the MLP operator's
halves). Layout and neuron index are built outside the timed kernels. Forward only: the
operators' backwards recompute and fuse these pieces, so they are not separable.
"""

import numpy as np
import torch
import torch.nn.functional as F

from benchlab.core import threads
from benchlab.core.stats import medians, paired_ratio

from . import ops_attn, ops_mlp, setups

PARTS = ("forward", "backward", "optimizer", "predictor")
KERNELS = ("sdd", "dsd", "fc1", "fc2")


# ---- Fig 10: the step breakdown ------------------------------------------------------------------

def timed_rows(trainers: dict, timer, rounds: int, warmup: int) -> dict:
    """{name: [Trainer.timed_step() of each timed round]}, run side by side."""
    rows = {k: [] for k in trainers}
    fns = {k: (lambda k=k: rows[k].append(trainers[k].timed_step())) for k in trainers}
    times = timer.side_by_side(fns, warmup=warmup, rounds=rounds)
    return {k: got[len(got) - len(times[k]):] for k, got in rows.items()}  # warm-up rounds first


def part_medians(rows: list) -> dict:
    """{part: median seconds} over timed_step dicts, for PARTS and "step" (the whole step)."""
    return {p: float(np.median([r[p] for r in rows])) for p in PARTS + ("step",)}


def measure_breakdown(case, config, timer, **trainer_kw) -> dict:
    """Fig 10, one method: the parts of a step, dense SDPA and LE side by side ->
    dense_<part>, le_<part>, predictor_share (of LE's step), speedup, LE densities (a
    dense-only method: dense_<part> only)."""
    modes = [m for m in ("sdpa", "le") if setups.runs(case.method, m)]
    with threads(config.threads) as n:
        ts = {m: setups.trainer(config, case.model, case.method, case.seq_len, mode=m,
                                device=timer.device, **trainer_kw) for m in modes}
        got = timed_rows(ts, timer, config.rounds, config.warmup)
    out = {f"{'dense' if m == 'sdpa' else m}_{p}": v for m, rows in got.items()
           for p, v in part_medians(rows).items()}
    if "le" not in ts:
        return {"threads": n, **out}
    steps = {m: [r["step"] for r in rows] for m, rows in got.items()}
    st = ts["le"].stats
    return {"threads": n, **out, "predictor_share": out["le_predictor"] / out["le_step"],
            "speedup": paired_ratio(steps["sdpa"], steps["le"]),
            "density_attn": st.density("attn"), "density_mlp": st.density("mlp")}


# ---- Fig 12: each kernel on its own --------------------------------------------------------------

def _blocks(t: torch.Tensor, block: int) -> torch.Tensor:
    """(B, H, L, D) -> (B * H * nb, block, D), padded to whole blocks as the operator pads."""
    pad = -t.shape[-2] % block
    t = F.pad(t, (0, 0, 0, pad)) if pad else t
    return t.contiguous().reshape(-1, block, t.shape[-1])


def sdd(q, k, layout, block: int = ops_attn.BLOCK, *, causal: bool = True, scale=None) -> list:
    """Sampled dense-dense: [(n, block, cap * block) scores of each layout bucket], -inf where
    not kept."""
    B, H, L, D = q.shape
    nb = -(-L // block)
    qb, kb = _blocks(q, block), _blocks(k, block)
    limit = torch.full((B * H * nb,), L, dtype=torch.long, device=q.device)
    scale = D ** -0.5 if scale is None else scale
    return [ops_attn._bucket_scores(qb, kb, rows, cols, nb, block, causal, limit, scale, None, H)[0]
            for rows, cols in layout]


def dsd(probs: list, v, layout, block: int = ops_attn.BLOCK) -> torch.Tensor:
    """Sparse-dense: (B, H, L, D) = each bucket's kept-block probabilities times V."""
    B, H, L, D = v.shape
    nb = -(-L // block)
    vb = _blocks(v, block)
    out5 = v.new_zeros(B, H, nb, block, D)
    for (rows, cols), p in zip(layout, probs, strict=True):
        out5[ops_attn._bhi(rows, H, nb)] = torch.bmm(p, ops_attn._gather(vb, cols))
    return out5.reshape(B, H, nb * block, D)[:, :, :L]


def softmax_buckets(scores: list) -> list:
    """Row softmax of each bucket's scores, rows without a kept entry 0 (the DSD's input)."""
    return [torch.softmax(s, -1).nan_to_num_(0.0) for s in scores]


fc1, fc2 = ops_mlp.sparse_fc1, ops_mlp.sparse_fc2  # the MLP operator's own two halves


def kernel_fns(case, device="cpu", seed: int = 0) -> tuple[dict, dict]:
    """({"<kernel>_sparse" | "<kernel>_dense": fn()}, densities) on random inputs of the case's
    shapes, at its sparsity."""
    c = case
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, s=1.0):
        return (torch.randn(*shape, generator=gen) * s).to(device)

    q, k, v = (rand(c.batch, c.heads, c.tokens, c.head_dim) for _ in range(3))
    mask = ops_attn.random_block_mask(c.batch, c.heads, c.tokens, c.sparsity, generator=gen,
                                      device=device)
    layout = ops_attn.build_layout(mask)
    probs = softmax_buckets(sdd(q, k, layout))
    # the diagonal: no empty row
    kept = ops_attn._element_mask(mask, c.tokens, True, None, ops_attn.BLOCK)
    p_dense = torch.softmax((q @ k.transpose(-1, -2)).masked_fill(~kept, -torch.inf), -1)
    N = c.batch * c.tokens
    x, h = rand(N, c.d_model), rand(N, c.ffn_dim).relu_()
    w1, w2 = rand(c.ffn_dim, c.d_model, s=c.d_model ** -0.5), rand(c.d_model, c.ffn_dim)
    b1, b2 = rand(c.ffn_dim), rand(c.d_model)
    keep = ops_mlp.random_keep(c.ffn_dim // c.block, c.sparsity, generator=gen).to(device)
    idx = ops_mlp.keep_to_index(keep, c.block)
    hk = h[:, idx].contiguous()
    scale = c.head_dim ** -0.5
    fns = {"sdd_sparse": lambda: sdd(q, k, layout), "dsd_sparse": lambda: dsd(probs, v, layout),
           "fc1_sparse": lambda: fc1(x, w1, b1, idx, c.block),
           "fc2_sparse": lambda: fc2(hk, w2, b2, idx, c.block),
           "sdd_dense": lambda: torch.matmul(q, k.transpose(-1, -2)).mul_(scale),
           "dsd_dense": lambda: torch.matmul(p_dense, v),
           "fc1_dense": lambda: F.linear(x, w1, b1).relu_(),  # in place, as fc1
           "fc2_dense": lambda: F.linear(h, w2, b2)}
    attn, mlp = ops_attn.block_density(mask), float(keep.float().mean())
    return fns, {"density_attn": attn, "density_mlp": mlp, "density": 0.5 * (attn + mlp)}


def measure_kernel(case, config, timer, seed: int = 0) -> dict:
    """Fig 12, one sparsity: t_<kernel>_{sparse,dense} medians and speedup_<kernel>."""
    ops = config.ops
    with threads(ops.threads) as n, torch.no_grad():
        fns, dens = kernel_fns(case, timer.device, seed)
        ts = timer.side_by_side(fns, warmup=ops.warmup, rounds=ops.rounds)
    out = {f"t_{k}": v for k, v in medians(ts).items()}
    out.update({f"speedup_{k}": paired_ratio(ts[f"{k}_dense"], ts[f"{k}_sparse"])
                for k in KERNELS})
    return {"threads": n, **out, **dens}
