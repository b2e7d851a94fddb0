"""Attention on packed rows with the masks of a trained model: Long Exposure's block-sparse
operator against per-document dense attention, the exact dense reference (case kind doc_attn).

    pytest bench/test_long_exposure_ops.py -k doc_attn --bench-scale tiny
    benchlab long-exposure attn-study --seq-len 2048 --rounds 10 --out reports/long_exposure

One packed row (setups.batch) goes through the trained model (config.ops.model); its documents
and one layer's attention probabilities give every mask:
    le_exposed   the exposer's block keep of that layer at config.ops.mass (what LE runs)
    le_at_<d>    per head, the diagonal blocks and then the blocks of most pooled attention mass
                 inside the documents, up to in-document density d (kept / causal blocks) for d
                 in config.ops.doc_grid (0.03-0.2) up to the documents' own density
Dense baselines, all exact and inside documents but one (forward + backward of q, k, v):
    per_document   causal SDPA on each document slice: the reference baseline (exact dense work)
    sdpa_causal    causal SDPA over the whole row (crosses documents: a cost reference only)
    sdpa_doc_mask  SDPA with the (1, 1, L, L) document mask (the weaker exact baseline)
Timed on random q, k, v of the model's own heads (the masks are per head), config.ops.doc_rounds
rotated rounds, each implementation first checked against the float64 masked dense reference.

Metrics: t_rounds_<impl> (seconds per round), t_<impl> (medians), density_<impl> (kept /
causal blocks), and break_even_per_document with its 95% bootstrap interval over rounds
(break_even_ci_lo / _hi; 0.0: LE slower at every swept density, 1.0: faster at every one).
"""

from dataclasses import dataclass

import numpy as np
import torch

from ..core.timing import forward_backward
from . import ops_attn
from .opcases import short_name

BASELINES = {"per_document": "sdpa_docs", "sdpa_causal": "sdpa_causal",
             "sdpa_doc_mask": "sdpa"}  # table name -> ops_attn.document_attention impl


@dataclass(frozen=True)
class DocAttnCase:
    id: str
    kind: str  # doc_attn
    model: str  # trained zoo model: documents, attention, masks
    seq_len: int
    head_dim: int
    mass: float  # exposer mass of le_exposed
    grid: tuple[float, ...]  # in-document densities of the sweep
    rounds: int


def doc_attn_cases(config) -> list[DocAttnCase]:
    o = config.ops
    return [DocAttnCase(f"{short_name(o.model)}-L{L}", "doc_attn", o.model, L, o.head_dim, o.mass,
                        o.doc_grid, o.doc_rounds) for L in o.doc_seq_lens]


def density_name(d: float) -> str:
    return f"le_at_{d:g}"


def top_blocks(scores: torch.Tensor, allowed: torch.Tensor, density: float) -> torch.Tensor:
    """(B, H, nb, nb) bool: per (row, head) the diagonal blocks, then the allowed blocks of
    largest `scores` until `density` of the causal blocks are kept (never beyond `allowed`)."""
    B, H, nb, _ = scores.shape
    eye = torch.eye(nb, dtype=torch.bool)
    want = max(nb, round(density * nb * (nb + 1) / 2))
    s = scores.masked_fill(~allowed[:, None], -1.0).masked_fill(eye, 2.0).reshape(B, H, -1)
    order = s.argsort(-1, descending=True).argsort(-1)
    keep = (order < want) & (s >= 0)
    return keep.view(B, H, nb, nb)


def trained_masks(model_name: str, ids: torch.Tensor, mass: float, grid) -> dict:
    """{"docs", "layer", "heads", "le_exposed", "le_at_<d>": (1, H, nb, nb) bool} of one packed
    row `ids` (1, L) on the trained model."""
    from . import exposer, setups

    model = setups.base_model(model_name)
    cap = exposer.run_captured(model, ids)
    layer = len(cap.q) // 2
    docs = cap.docs
    probs = exposer.attention_probs(cap.q[layer], cap.k[layer], docs=docs.ids)
    valid = torch.ones(ids.shape, dtype=torch.bool)
    exposed = exposer.attention_sparsity(probs, exposer.ExposerConfig(mass=mass), valid,
                                         docs.ids)["attn_block_mask"]
    allowed = docs.blocks(ops_attn.BLOCK)
    scores = exposer.pooled_block_mass(probs, ops_attn.BLOCK)
    out = {"docs": docs, "layer": layer, "heads": probs.shape[1],
           "le_exposed": exposed & allowed[:, None]}
    doc_density = docs.density(ops_attn.BLOCK)
    for d in grid:
        if d <= doc_density + 1e-9:
            out[density_name(d)] = top_blocks(scores, allowed, d)
    return out


def measure_doc_attn(case, config, timer, seed: int = 0) -> dict:
    """One doc_attn case: every implementation side by side for case.rounds rotated rounds."""
    from . import breakeven, setups

    ids = setups.batch(config, case.model, case.seq_len)[:1]
    masks = trained_masks(case.model, ids, case.mass, case.grid)
    docs, H = masks["docs"], masks["heads"]
    gen = torch.Generator().manual_seed(seed)
    shape = (1, H, case.seq_len, case.head_dim)
    q, k, v = (torch.randn(shape, generator=gen).requires_grad_(True) for _ in range(3))
    go = torch.randn(shape, generator=gen)
    sparse = {n: m for n, m in masks.items() if n.startswith("le_")}
    fwd = {n: (lambda i=impl: ops_attn.document_attention(q, k, v, docs, i))
           for n, impl in BASELINES.items()}
    fwd.update({n: (lambda m=m: ops_attn.block_sparse_attention(q, k, v, m, docs=docs.ids,
                                                                shortcut=False))
                       for n, m in sparse.items()})
    q64, k64, v64 = (t.detach().double() for t in (q, k, v))
    full = ops_attn.causal_block_mask(1, H, case.seq_len)
    with torch.no_grad():
        err = {n: float((f().double() - ops_attn.masked_dense_attention(
            q64, k64, v64, sparse.get(n, full), docs=docs.ids)).abs().max())
            for n, f in fwd.items() if n != "sdpa_causal"}
    fns = {n: forward_backward(f, (q, k, v), go) for n, f in fwd.items()}
    ts = timer.side_by_side(fns, warmup=1, rounds=case.rounds)  # CPU tensors: a CPU study
    dens = {n: ops_attn.block_density(m) for n, m in sparse.items()}
    grid = {d: ts[density_name(d)] for d in case.grid if density_name(d) in ts}
    if grid:
        b, lo, hi = breakeven.crossing_interval(ts["per_document"], grid, seed=seed)
    else:  # the documents are sparser than the whole grid
        b = lo = hi = float("nan")
    doc = docs.density(ops_attn.BLOCK)
    dens.update({n: (1.0 if n == "sdpa_causal" else doc) for n in BASELINES})
    return {"layer": masks["layer"], "heads": H, "head_dim": case.head_dim,
            "rounds": len(ts["per_document"]), "documents": docs.count(), "density_doc": doc,
            "max_abs_error": max(err.values()), "grid_ran": sorted(grid),
            "break_even_per_document": b, "break_even_ci_lo": lo, "break_even_ci_hi": hi,
            **{f"t_rounds_{n}": [float(x) for x in t] for n, t in ts.items()},
            **{f"t_{n}": float(np.median(t)) for n, t in ts.items()},
            **{f"density_{n}": d for n, d in dens.items()}}
