"""Attention on packed rows, side by side: every exact dense way to keep queries inside their
documents, Long Exposure's operator and FlexAttention, at the 125m shape (12 heads of 64).

    benchlab long-exposure attn-study --seq-len 1024 --rounds 7 --out reports/long_exposure

One packed row of E2E-style records (zoo BPE, the experiment's records) gives the documents.
Implementations (forward + backward of q, k, v unless "fwd"), all equal to the masked dense
reference (checked first, float32, max abs error recorded):
    sdpa          SDPA with the (1, 1, L, L) document mask        the baseline
    sdpa_docs     causal SDPA per document slice                  exact dense per-document work
    eager         masked softmax
    sdpa_causal   causal SDPA over the whole row (leaks across documents; cost reference only)
    sparse@k      block-sparse operator, document blocks AND a random k of them kept (k=1.0:
                  the document structure alone)
    flex@k (fwd)  compiled FlexAttention under the same BlockMask, forward only (torch has no
                  FlexAttention backward on CPU); compiled once before the timed rounds; its
                  BlockMask skips whole tiles of --flex-block tokens (default: the CPU tile, 32)
Speedups are paired per round against sdpa (and fwd against sdpa fwd): median ratio, a 95%
bootstrap interval of the median and a paired t-test p-value (core.stats). Rounds are rotated
(core.timing.interleave), one thread.
"""

import json
from pathlib import Path

import numpy as np
import torch

from ..core.stats import paired_ratio, paired_ratio_ci, paired_ttest
from ..core.timing import forward_backward, interleave
from . import documents as D
from . import ops_attn as A

KEEPS = (1.0, 0.5, 0.25)


def packed_docs(seq_len: int, model: str = "opt-tiny", n_records: int = 1500, seed: int = 0):
    """Document ids (1, L) of the first packed row of the experiment's records."""
    from . import finetune as ft
    from . import workload as wl

    row = wl.rows(model, n_records, seq_len, seed)[:1]
    return D.Docs(row, ft.eos_id(ft.tokenizer_for(model)))


def _keep(docs, H, frac, gen):
    """Document blocks with a random `frac` of the off-diagonal ones kept (diagonal always)."""
    blocks = docs.blocks(A.BLOCK)[:, None].expand(-1, H, -1, -1)
    nb = blocks.shape[-1]
    r = torch.rand(blocks.shape, generator=gen) < frac
    return blocks & (r | torch.eye(nb, dtype=torch.bool))


def _paired(ts, base, name):
    lo, hi = paired_ratio_ci(ts[base], ts[name])
    p = paired_ttest(ts[base], ts[name])[1] if len(ts[base]) > 1 else float("nan")
    return {"speedup": paired_ratio(ts[base], ts[name]), "ci_low": lo, "ci_high": hi, "p": p}


def run(seq_len: int = 1024, heads: int = 12, head_dim: int = 64, rounds: int = 7,
        keeps=KEEPS, flex: bool = True, seed: int = 0, flex_block: int | None = None) -> dict:
    from . import flex as FX

    docs = packed_docs(seq_len)
    gen = torch.Generator().manual_seed(seed)
    shape = (1, heads, seq_len, head_dim)
    q, k, v = (torch.randn(shape, generator=gen).requires_grad_(True) for _ in range(3))
    go = torch.randn(shape, generator=gen)
    masks = {f"sparse@{f:g}": _keep(docs, heads, f, gen) for f in keeps}
    fns = {name: (lambda n=name: A.document_attention(q, k, v, docs, n))
           for name in ("sdpa", "sdpa_docs", "eager", "sdpa_causal")}
    fns.update({n: (lambda m=m: A.block_sparse_attention(q, k, v, m, docs=docs.ids))
                for n, m in masks.items()})
    q64, k64, v64 = (t.detach().double() for t in (q, k, v))
    full = A.causal_block_mask(1, heads, seq_len)
    refs = {n: A.masked_dense_attention(q64, k64, v64, masks.get(n, full), docs=docs.ids)
            for n in fns if n != "sdpa_causal"}
    with torch.no_grad():
        err = {n: float((fns[n]().double() - r).abs().max()) for n, r in refs.items()}

    ts = interleave({n: forward_backward(fn, (q, k, v), go) for n, fn in fns.items()}, warmup=1,
                    rounds=rounds)
    fwd = dict(fns)
    if flex:
        qd, kd, vd = (t.detach() for t in (q, k, v))
        bms = {n.replace("sparse", "flex"): FX.block_mask(docs.ids, heads, m,
                                                          flex_block=flex_block)
               for n, m in masks.items()}
        for n, bm in bms.items():
            fwd[n] = (lambda bm=bm: FX.attention(qd, kd, vd, bm))
        for n in bms:  # the first call compiles (outside the timed rounds)
            err[n] = float((fwd[n]().double() - refs[n.replace("flex", "sparse")]).abs().max())
    with torch.no_grad():
        tf = interleave(fwd, warmup=1, rounds=rounds)
    out = {"seq_len": seq_len, "heads": heads, "head_dim": head_dim, "rounds": rounds,
           "flex_block": flex_block or FX.FLEX_BLOCK_CPU,
           "documents": docs.count(), "density_doc": docs.density(A.BLOCK),
           "max_abs_error": err, "rows": []}
    for n in fwd:
        kept = masks.get(n.replace("flex", "sparse"))
        dens = A.block_density(kept) if kept is not None else (
            1.0 if n == "sdpa_causal" else docs.density(A.BLOCK))
        row = {"impl": n, "density": dens, "t_fwd": float(np.median(tf[n])),
               **{f"fwd_{k}": v for k, v in _paired(tf, "sdpa", n).items()}}
        if n in ts:
            row.update(t=float(np.median(ts[n])), **_paired(ts, "sdpa", n))
        out["rows"].append(row)
    return out


def write(result: dict, outdir) -> list[Path]:
    """attn_study.json and attn_study.md (one row per implementation) under `outdir`."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    js = outdir / "attn_study.json"
    js.write_text(json.dumps(result, indent=1) + "\n")
    head = (f"Attention on one packed row, L={result['seq_len']}, {result['heads']} heads of "
            f"{result['head_dim']}, {result['documents']:.0f} documents (document density "
            f"{result['density_doc']:.3f}), one thread, {result['rounds']} rotated rounds, "
            f"FlexAttention tiles of {result.get('flex_block', 128)}. "
            "Speedup vs SDPA with the document mask: median of paired rounds [95% bootstrap "
            "interval], paired t-test p. Measured on a shared 2-core machine under contention.\n")
    lines = [head, "| impl | density | fwd+bwd ms | speedup | 95% CI | p | fwd ms | fwd speedup "
             "| fwd 95% CI |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        fb = (f"{1e3 * r['t']:.2f} | {r['speedup']:.2f} | [{r['ci_low']:.2f}, "
              f"{r['ci_high']:.2f}] | {r['p']:.2g}") if "t" in r else "n/a (no CPU backward) " \
            "| | | "
        lines.append(f"| {r['impl']} | {r['density']:.3f} | {fb} | {1e3 * r['t_fwd']:.2f} | "
                     f"{r['fwd_speedup']:.2f} | [{r['fwd_ci_low']:.2f}, {r['fwd_ci_high']:.2f}] |")
    lines.append("\nmax abs error vs the float64 masked dense reference: " + ", ".join(
        f"{k} {v:.1e}" for k, v in result["max_abs_error"].items()))
    md = outdir / "attn_study.md"
    md.write_text("\n".join(lines) + "\n")
    return [js, md]
