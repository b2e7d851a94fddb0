"""The Long Exposure report: every figure of the artifact by name, plus tables, from records only.

    benchlab report out.json     # rebuilds reports/long_exposure/ from a --benchmark-json file

Each figure and table picks its records by case kind (the package's `<kind>_cases`: end2end,
memory, ablation, breakdown, predictor, scale, model_step; and opcases' op_mlp, op_attn,
exposer, predictor_quality), never by test name; metric names are the package's `METRICS`.
A figure without records is still written, saying so, so the set of files is the same whatever
ran. Every other figure's title names the scale and the model(s) (or, for the operator and kernel
figures, the shape) that ran (`run_label`) and the densities LE ran at (`density_label`).
"""

from pathlib import Path

import numpy as np
import pandas as pd

from benchlab.core.report import new_figure, of_kind, records_frame, save_figure, write_table

from . import mlp_grain as mlp_grain_study

FIGURES = ("exp-overall-end2end", "exp-overall-memory-opt-350m", "exp-overall-memory-opt-1.3b",
           "exp-ablation-attn-sparsity", "exp-ablation-attn-time", "exp-ablation-mlp-sparsity",
           "exp-ablation-mlp-time", "exp-ablation-breakdown", "exp-ablation-predictor",
           "exp-ablation-operator-attn", "exp-ablation-operator-mlp", "exp-scale-model",
           "exp-ablation-mlp-grain", "exp-ablation-kernels", "exp-scale-gpt2",
           "exp-ablation-attn-patterns")
MODES = (("t_eager", "dense eager"), ("t_sdpa", "dense SDPA"), ("t_le", "Long Exposure"))


def _col(frame, name, default=np.nan):
    return frame[name] if name in frame else pd.Series(default, index=frame.index)


def _unique(rows, col: str) -> list[str]:
    return [str(v) for v in dict.fromkeys(rows[col].dropna())] if col in rows else []


def run_label(rows, shape: str = "") -> str:
    """What ran, for every figure's title: '<scale> scale, <model(s)>[, <shape>]' (the records'
    `scale` and case.model)."""
    scale = "/".join(_unique(rows, "scale")) or "unknown"
    what = ", ".join(x for x in (", ".join(_unique(rows, "case.model")), shape) if x)
    return f"{scale} scale, {what}" if what else f"{scale} scale"


def _span(values) -> str:
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    if v.empty:
        return "n/a"
    lo, hi = f"{v.min():.2f}", f"{v.max():.2f}"
    return lo if lo == hi else f"{lo}-{hi}"


def density_label(rows, who: str = "LE", prefix: str = "density_") -> str:
    """'<who> kept attn a, doc d, mlp m' over `rows` (min-max where they differ; attention and
    documents as fractions of the causal blocks, MLP of the neuron blocks)."""
    parts = [f"{p} {_span(rows[f'{prefix}{p}'])}" for p in ("attn", "doc", "mlp")
             if f"{prefix}{p}" in rows]
    return f"{who} kept " + ", ".join(parts) if parts else f"{who} densities not recorded"


def _empty(outdir, name: str, why: str = "no records for this figure in this run"):
    fig, ax = new_figure()
    ax.text(0.5, 0.5, why, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    ax.set_title(name)
    return save_figure(fig, outdir, name)


def _bars(ax, labels, series: dict, ylabel: str):
    """Grouped bars: one group per label, one bar per series entry."""
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(x, labels, rotation=20)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)


def end2end(frame, outdir):
    rows = of_kind(frame, "end2end")
    if rows.empty:
        return _empty(outdir, "exp-overall-end2end")
    lens = sorted(rows["case.seq_len"].unique())
    fig, axes = new_figure(1, len(lens), size=(4.8 * len(lens), 3.6))
    for ax, L in zip(np.ravel(axes), lens, strict=True):
        sub = rows[rows["case.seq_len"] == L]
        _bars(ax, list(sub["case.method"]),
              {label: 1e3 * _col(sub, key).to_numpy() for key, label in MODES}, "step time (ms)")
        ax.set_title(f"L={int(L)}: {density_label(sub)}", fontsize=8)
    fig.suptitle(f"exp-overall-end2end: {run_label(rows)}", fontsize=9)
    return save_figure(fig, outdir, "exp-overall-end2end")


MEMORY_LINES = (("dense", "dense SDPA"), ("eager", "dense eager"), ("le", "LE (predicted)"),
                ("oracle", "LE-optimal (oracle masks)"))


def memory(frame, outdir):
    """Fig 8: training memory against sequence length, one panel per PEFT method, one figure
    per model (the artifact's OPT-350M and OPT-1.3B; the title names the model that ran):
    tensors counted, solid; on CUDA the allocator's peak over a step, dashed, same colour."""
    rows = of_kind(frame, "memory")
    paths = []
    for name in ("exp-overall-memory-opt-350m", "exp-overall-memory-opt-1.3b"):
        sub = rows[rows["case.figure"] == name] if not rows.empty else rows
        if sub.empty:
            paths.append(_empty(outdir, name))
            continue
        methods = list(dict.fromkeys(sub["case.method"]))
        fig, axes = new_figure(1, len(methods), size=(3.2 * len(methods), 3.4))
        for ax, method in zip(np.ravel(axes), methods, strict=True):
            m = sub[sub["case.method"] == method].sort_values("case.seq_len")
            for prefix, label in MEMORY_LINES:
                line = ax.plot(m["case.seq_len"], _col(m, f"{prefix}_total") / 2**20,
                               marker="o", label=label)[0]
                peak = _col(m, f"{prefix}_cuda_peak")
                if peak.notna().any():
                    ax.plot(m["case.seq_len"], peak / 2**20, ls="--", marker=".",
                            color=line.get_color())
            ax.set_xscale("log", base=2)
            ax.set_xlabel("sequence length")
            ax.set_title(f"{method}: {density_label(m, 'LE (predicted)', 'le_density_')}\n"
                         f"{density_label(m, 'LE-optimal (oracle)', 'oracle_density_')}",
                         fontsize=7)
        np.ravel(axes)[0].set_ylabel("training memory (MiB)")
        np.ravel(axes)[0].legend(fontsize=6)
        peaks = any(_col(sub, f"{p}_cuda_peak").notna().any() for p, _ in MEMORY_LINES)
        fig.suptitle(f"{name}: {run_label(sub)}; tensors counted (weights, grads + AdamW, saved "
                     "activations)" + ("; dashed: CUDA allocator peak" if peaks else ""),
                     fontsize=8)
        paths.append(save_figure(fig, outdir, name))
    return paths


def le_label(row, part: str = "both") -> str:
    """'LE (<part> sparse, attn a / doc d, mlp m)', or '... keeps everything' when its masks
    skipped nothing beyond the documents (then it is the dense function on a sparse path)."""
    get = row.get if hasattr(row, "get") else (lambda k, d=None: d)
    a, dd, m = (get(f"density_{k}", np.nan) for k in ("attn", "doc", "mlp"))
    keeps = bool(get("keeps_everything", False)) or (part == "mlp" and m >= 1.0) or (
        part == "attn" and a >= dd)
    what = "keeps everything" if keeps else "sparse"
    return f"LE ({part} {what}; attn {a:.2f}, doc {dd:.2f}, mlp {m:.2f})"


def part_time(frame, outdir, part: str):
    name = f"exp-ablation-{part}-time"
    rows = of_kind(frame, "ablation")
    rows = rows[rows["case.part"] == part] if not rows.empty else rows
    if rows.empty:
        return _empty(outdir, name)
    fig, ax = new_figure()
    labels = [f"L={int(r['case.seq_len'])}\n{le_label(r, part)}" for _, r in rows.iterrows()]
    _bars(ax, labels, {"dense SDPA (document mask)": 1e3 * _col(rows, "t_sdpa").to_numpy(),
                       "Long Exposure": 1e3 * _col(rows, "t_le").to_numpy()},
          "LoRA step time (ms)")
    ax.tick_params(axis="x", labelsize=5)
    ax.set_title(f"{name}: {run_label(rows)}\n{density_label(rows)}", fontsize=8)
    return save_figure(fig, outdir, name)


def breakdown(frame, outdir):
    """Fig 10: forward / backward / optimizer / predictor ms of a step, dense SDPA and LE, per
    PEFT method and length."""
    name = "exp-ablation-breakdown"
    rows = of_kind(frame, "breakdown")
    if rows.empty:
        return _empty(outdir, name)
    fig, ax = new_figure(size=(max(4.5, 1.1 * len(rows)), 3.4))
    bars = [(f"{r['case.method']} L={int(r['case.seq_len'])}\n{label}", r, mode)
            for _, r in rows.iterrows() for mode, label in (("dense", "dense"), ("le", "LE"))
            if mode == "dense" or pd.notna(r.get("le_forward", np.nan))]  # prefix: dense only
    x, bottom = np.arange(len(bars)), np.zeros(len(bars))
    for part in ("forward", "backward", "optimizer", "predictor"):
        v = np.nan_to_num(np.array([r.get(f"{mode}_{part}", np.nan) for _, r, mode in bars],
                                   float)) * 1e3
        ax.bar(x, v, bottom=bottom, label=part)
        bottom += v
    labels = [label for label, _, _ in bars]
    ax.set_xticks(x, labels, fontsize=5)
    ax.set_ylabel("time per step (ms)")
    ax.set_title(f"{name}: {run_label(rows)}\n{density_label(rows)}", fontsize=8)
    ax.legend(fontsize=7)
    return save_figure(fig, outdir, name)


def kernels(frame, outdir):
    """Fig 12: each sparse kernel (SDD, DSD, fc1, fc2; kernels.py) over its dense counterpart."""
    name = "exp-ablation-kernels"
    rows = of_kind(frame, "kernel")
    if rows.empty:
        return _empty(outdir, name)
    rows = rows.sort_values("case.sparsity")
    fig, ax = new_figure()
    for k in ("sdd", "dsd", "fc1", "fc2"):
        ax.plot(rows["case.sparsity"], _col(rows, f"speedup_{k}"), marker="o", label=k.upper())
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("block sparsity (attention: of the causal blocks; MLP: of the neuron blocks)",
                  fontsize=7)
    ax.set_ylabel("dense / sparse time (forward)")
    r = rows.iloc[0]
    shape = (f"L={int(r['case.tokens'])}, {int(r['case.heads'])} heads of "
             f"{int(r['case.head_dim'])}, d={int(r['case.d_model'])}, F={int(r['case.ffn_dim'])}")
    ax.set_title(f"{name}: {run_label(rows, shape)}", fontsize=8)
    ax.legend(fontsize=7)
    return save_figure(fig, outdir, name)


def predictor_curves(frame, outdir):
    """Fig 11 left: LoRA loss curves with dense, predicted and random masks (both parts, attention
    only, MLP only), on the model as it is and on its neuron-reordered copy (the same function
    with sparser MLP blocks), each line labelled with the densities it ran at."""
    name = "exp-ablation-predictor"
    rows = of_kind(frame, "predictor")
    if rows.empty or "losses" not in rows:
        return _empty(outdir, name)
    reorder = _col(rows, "case.reorder", False).fillna(False).astype(bool)
    dense = rows[rows["case.masks"] == "dense"]
    fig, axes = new_figure(1, 2, size=(10.0, 4.0))
    for ax, flag, title in zip(np.ravel(axes), (False, True), ("as trained", "MLP reordered"),
                               strict=True):
        sub = pd.concat([dense, rows[(reorder == flag) & (rows["case.masks"] != "dense")]])
        for _, row in sub.iterrows():
            losses = list(row["losses"])
            ax.plot(np.arange(1, len(losses) + 1), losses, lw=1,
                    label=f"{row['case.masks']} (attn {row.get('density_attn', np.nan):.2f}, "
                    f"mlp {row.get('density_mlp', np.nan):.2f})")
        ax.set_xlabel("step")
        ax.set_title(title, fontsize=8)
        ax.legend(fontsize=6)
    np.ravel(axes)[0].set_ylabel("training loss")
    fig.suptitle(f"{name}: {run_label(rows)}; {density_label(rows[rows['case.masks'] != 'dense'])}"
                 " (each line: its own)", fontsize=8)
    return save_figure(fig, outdir, name)


def scale(frame, outdir):
    rows = of_kind(frame, "scale")
    if rows.empty:
        return _empty(outdir, "exp-scale-model")
    fig, ax = new_figure()
    _bars(ax, list(rows["case.model"]), {label: 1e3 * _col(rows, key).to_numpy()
                                         for key, label in MODES}, "LoRA step time (ms)")
    ax.set_title(f"exp-scale-model: {run_label(rows)}, L={int(rows['case.seq_len'].iloc[0])}\n"
                 f"{density_label(rows)}", fontsize=8)
    return save_figure(fig, outdir, "exp-scale-model")


def gpt2(frame, outdir):
    """Fig 13: a step of every PEFT method on GPT-2, dense (eager, SDPA) vs LE, per model."""
    name = "exp-scale-gpt2"
    rows = of_kind(frame, "gpt2")
    if rows.empty:
        return _empty(outdir, name)
    models = list(dict.fromkeys(rows["case.model"]))
    fig, axes = new_figure(1, len(models), size=(4.8 * len(models), 3.6))
    for ax, model in zip(np.ravel(axes), models, strict=True):
        sub = rows[rows["case.model"] == model]
        _bars(ax, [f"{m}\n{le_label(r)}" for m, (_, r) in zip(sub["case.method"], sub.iterrows(),
                                                                strict=True)],
              {label: 1e3 * _col(sub, key).to_numpy() for key, label in MODES}, "step time (ms)")
        ax.tick_params(axis="x", labelsize=5)
        act = sub.iloc[0]
        ax.set_title(f"{model}, L={int(sub['case.seq_len'].iloc[0])}: {density_label(sub)}\n"
                     f"GELU MLP runs dense: active per token "
                     f"{act.get('mlp_neuron_token_mean', np.nan):.2f} of neurons, sequence "
                     f"union {act.get('mlp_seq_union_mean', np.nan):.2f} of blocks", fontsize=7)
    fig.suptitle(f"{name}: {run_label(rows)}", fontsize=9)
    return save_figure(fig, outdir, name)


def patterns(frame, outdir):
    """Fig 9 (exp-ablation-attn-patterns): per layer, the attention mass covered, the block
    density and the operator speedup of the exposer's, the predictor's, Longformer's and
    BigBird's masks (patterns.py), BigBird and Longformer at the exposer's density."""
    from .patterns import PATTERNS

    name = "exp-ablation-attn-patterns"
    rows = of_kind(frame, "pattern")
    if rows.empty:
        return _empty(outdir, name)
    row = rows.iloc[0]
    fig, axes = new_figure(1, 3, size=(13.5, 3.4))
    for ax, metric, label in zip(np.ravel(axes), ("mass", "density", "speedup"),
                                 ("attention mass covered", "block density (kept / causal)",
                                  "speedup vs SDPA (fwd + bwd)"), strict=True):
        for p in PATTERNS:
            v = list(row[f"{p}_{metric}"])
            ax.plot(range(len(v)), v, marker="o", label=p)
        ax.set_xlabel("layer")
        ax.set_ylabel(label)
        if metric == "speedup":
            ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    np.ravel(axes)[0].legend(fontsize=7)
    fig.suptitle(f"{name}: {run_label(rows)}, L={int(row['case.seq_len'])}, mass target "
                 f"{row['case.mass']}; documents keep {_span([row.get('doc_density')])} of the "
                 "causal blocks", fontsize=9)
    return save_figure(fig, outdir, name)


def operator(frame, outdir, kind: str):
    """exp-ablation-operator-{mlp,attn}: speedup of the block-sparse operator over sparsity,
    with the ideal 1 / density and (MLP) the 85%-of-ideal goal."""
    name = f"exp-ablation-operator-{kind}"
    rows = of_kind(frame, f"op_{kind}")
    if rows.empty:
        return _empty(outdir, name)
    rows = rows.sort_values("case.sparsity")
    sp = rows["case.sparsity"].to_numpy()
    fig, axes = new_figure(1, 2, size=(9.0, 3.4))
    ax_t, ax_s = np.ravel(axes)
    refs = ({"dense": "t_dense"} if kind == "mlp" else {"SDPA": "t_sdpa", "eager": "t_eager"})
    for label, key in {**refs, "block-sparse": "t_sparse"}.items():
        ax_t.plot(sp, 1e3 * _col(rows, key), marker="o", label=label)
    ax_t.set_xlabel("block sparsity")
    ax_t.set_ylabel("forward + backward (ms)")
    ax_t.legend(fontsize=7)
    ideal = 1.0 / _col(rows, "density").to_numpy()
    for label, key in ({"vs dense": "speedup"} if kind == "mlp" else
                       {"vs SDPA": "speedup_sdpa", "vs eager": "speedup_eager"}).items():
        ax_s.plot(sp, _col(rows, key), marker="o", label=label)
    ax_s.plot(sp, ideal, "k--", label="ideal 1/density")
    if kind == "mlp":
        ax_s.plot(sp, 0.85 * ideal, "k:", label="goal 85% of ideal")
    ax_s.set_xlabel("block sparsity")
    ax_s.set_ylabel("speedup")
    ax_s.legend(fontsize=7)
    r = rows.iloc[0]
    shape = (f"{int(r['case.tokens'])} tokens, d={int(r['case.d_model'])}, "
             f"F={int(r['case.ffn_dim'])}, blocks of {int(r['case.block'])} neurons"
             if kind == "mlp" else
             f"L={int(r['case.tokens'])}, {int(r['case.heads'])} heads of "
             f"{int(r['case.head_dim'])}, batch {int(r['case.batch'])}")
    fig.suptitle(f"{name}: {run_label(rows, shape)}", fontsize=9)
    return save_figure(fig, outdir, name)


SPARSITY_METRICS = {
    "attn": ("attn_doc", "attn_token", "attn_block", "attn_pooled", "attn_head_union",
             "attn_batch_union"),
    "mlp": ("mlp_nonzero", "mlp_neuron_token", "mlp_neuron_seq_union", "mlp_neuron_batch_union",
            "mlp_token", "mlp_seq_union", "mlp_batch_union"),
}


def sparsity(frame, outdir, kind: str):
    """exp-ablation-{attn,mlp}-sparsity: per-layer sparsity (1 - density) per token vs unions
    over the sequence and the batch (the shadowy effect)."""
    name = f"exp-ablation-{kind}-sparsity"
    rows = of_kind(frame, "exposer")
    if rows.empty:
        return _empty(outdir, name)
    row = rows.iloc[0]
    series = {m: 1.0 - np.asarray(row[m], float) for m in SPARSITY_METRICS[kind]
              if m in rows and isinstance(row[m], list | tuple | np.ndarray)}
    if not series:
        return _empty(outdir, name, "exposer records carry no per-layer densities")
    fig, ax = new_figure(size=(6.0, 3.4))
    n = len(next(iter(series.values())))
    _bars(ax, [f"layer {i}" for i in range(n)], series, "sparsity (1 - density)")
    ax.set_ylim(0, 1)
    ax.set_title(f"{name}: {run_label(rows)}, L={int(row['case.seq_len'])}", fontsize=9)
    return save_figure(fig, outdir, name)


GRAIN_RELS = tuple(round(100 * r) for r in mlp_grain_study.RELS)  # thresholds in % (t{pct})


def _grain_density(ax, row, rows):
    """Per-sequence union density against block size, plain (solid) and reordered (dashed),
    one colour per threshold; dotted: the per-token neuron density."""
    for t in GRAIN_RELS:
        blocks = [b for b in mlp_grain_study.BLOCKS if f"mlp_seq_union_t{t}_b{b}" in rows]
        if not blocks:
            continue
        line = ax.plot(blocks, [row[f"mlp_seq_union_t{t}_b{b}"] for b in blocks], marker="o",
                       label=f"threshold {t}%")[0]
        re = [b for b in blocks if f"mlp_seq_union_t{t}_b{b}_reordered" in rows]
        ax.plot(re, [row[f"mlp_seq_union_t{t}_b{b}_reordered"] for b in re], ls="--",
                marker="s", color=line.get_color(), label=f"threshold {t}%, reordered")
        ax.axhline(row.get(f"mlp_token_t{t}", np.nan), color=line.get_color(), ls=":", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("neurons per block")
    ax.set_ylabel("kept blocks / blocks (sequence union)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=6)
    ax.set_title("density (dotted: per token)", fontsize=8)


def _grain_time(ax, row, t: int, blocks: list):
    """Per-layer MLP forward + input grad (ms) at one threshold: dense, column-sparse (block 1)
    and block-sparse (plain solid, reordered dashed), each labelled with its mean density."""
    def dens(key):
        return f"{row.get(key, np.nan):.2f}"

    n = len(row["t_mlp_dense"])
    ax.plot(range(n), 1e3 * np.asarray(row["t_mlp_dense"]), "k-o", ms=3, label="dense")
    ax.plot(range(n), 1e3 * np.asarray(row[f"t_mlp_column_t{t}"]), marker="o", ms=3,
            color="C0", label=f"column-sparse (block 1, {dens(f'mlp_seq_union_t{t}_b1')})")
    for i, b in enumerate(blocks):
        ax.plot(range(n), 1e3 * np.asarray(row[f"t_mlp_block_t{t}_b{b}"]), marker="o", ms=3,
                color=f"C{i + 1}", label=f"block {b} ({dens(f'mlp_seq_union_t{t}_b{b}')})")
        re = row.get(f"t_mlp_block_t{t}_b{b}_reordered")
        if isinstance(re, list | tuple | np.ndarray):
            ax.plot(range(n), 1e3 * np.asarray(re), ls="--", marker="s", ms=3,
                    color=f"C{i + 1}",
                    label=f"block {b} reordered ({dens(f'mlp_seq_union_t{t}_b{b}_reordered')})")
    ax.set_xticks(range(n))
    ax.set_xlabel("layer")
    ax.set_ylabel("MLP fwd + input grad (ms)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=5)
    ax.set_title(f"threshold {t}% (legend: mean kept density)", fontsize=8)


def _grain_speedup(ax, row, rels: list, blocks: list):
    """Mean over layers of the paired dense / sparse ratio, against the threshold."""
    series = [("column_t{t}", "column-sparse (block 1)", "-", "C0")] + [
        (f"block_t{{t}}_b{b}{r}", f"block {b}{' reordered' if r else ''}", "--" if r else "-",
         f"C{i + 1}") for i, b in enumerate(blocks) for r in ("", "_reordered")]
    for key, label, ls, color in series:  # the colours of _grain_time's lines
        v = [row.get(f"speedup_{key.format(t=t)}_mean", np.nan) for t in rels]
        ax.plot(rels, v, marker="o", ls=ls, color=color, label=label)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("threshold (% of the token's top activation)")
    ax.set_ylabel("dense / sparse (mean over layers)")
    ax.legend(fontsize=6)
    ax.set_title("speedup over dense", fontsize=8)


def mlp_grain(frame, outdir):
    """exp-ablation-mlp-grain: per-sequence MLP density against block size, neurons plain and
    reordered, one line pair per threshold (per-token neuron density for reference); where the
    records carry mlp_grain's time study (the artifact's Fig 9 MLP panel), per-layer MLP time of
    dense vs column-sparse vs block-sparse, one panel per threshold, and the mean speedups."""
    name = "exp-ablation-mlp-grain"
    rows = of_kind(frame, "mlp_grain")
    if rows.empty:
        return _empty(outdir, name)
    row = rows.iloc[0]
    rels = [t for t in GRAIN_RELS if isinstance(row.get(f"t_mlp_column_t{t}"), list | tuple)]
    title = f"{name}: {run_label(rows)}, L={int(row['case.seq_len'])}"
    if not rels or not isinstance(row.get("t_mlp_dense"), list | tuple):
        fig, ax = new_figure(size=(6.0, 3.6))
        _grain_density(ax, row, rows)
        ax.set_title(f"{title} (dotted: per token)", fontsize=8)
        return save_figure(fig, outdir, name)
    blocks = [b for b in mlp_grain_study.BLOCKS if f"t_mlp_block_t{rels[0]}_b{b}" in rows]
    fig, axes = new_figure(2, 3, size=(14.0, 7.4))
    ax = np.ravel(axes)
    _grain_density(ax[0], row, rows)
    for a, t in zip(ax[1:5], rels, strict=False):
        _grain_time(a, row, t, blocks)
    _grain_speedup(ax[5], row, rels, blocks)
    for a in ax[1 + len(rels):5]:
        a.set_axis_off()
    fig.suptitle(f"{title}; MLP time on each layer's own inputs and per-sequence union masks "
                 "of the held-out rows", fontsize=9)
    return save_figure(fig, outdir, name)


TABLE_COLUMNS = {
    "end2end": ["case.model", "case.method", "case.seq_len", "t_eager", "t_sdpa", "t_le",
                     "speedup_sdpa", "speedup_eager", "density_attn", "density_doc",
                     "density_mlp", "keeps_everything"],
    "memory": ["case.figure", "case.model", "case.method", "case.seq_len", "eager_total",
               "dense_total", "le_total", "oracle_total", "memory_ratio", "memory_ratio_eager",
               "memory_ratio_oracle", "activation_ratio", "le_density_attn", "le_density_mlp",
               "oracle_density_attn", "oracle_density_mlp", "dense_cuda_peak", "eager_cuda_peak",
               "le_cuda_peak", "oracle_cuda_peak"],
    "ablation": ["case.part", "case.seq_len", "t_sdpa", "t_le", "speedup_sdpa", "density_attn",
                 "density_doc", "density_mlp", "keeps_everything"],
    "breakdown": ["case.method", "case.seq_len", "dense_forward", "dense_backward",
                  "dense_optimizer", "le_forward", "le_backward", "le_optimizer", "le_predictor",
                  "predictor_share", "speedup", "density_attn", "density_mlp"],
    "kernel": ["case.sparsity", "density_attn", "density_mlp"] + [
        f"{m}" for k in ("sdd", "dsd", "fc1", "fc2")
        for m in (f"speedup_{k}", f"t_{k}_dense", f"t_{k}_sparse")],
    "predictor": ["case.masks", "case.reorder", "density_attn", "density_mlp", "density_doc",
                  "keeps_everything", "final_loss", "max_gap_to_dense", "mean_gap_to_dense"],
    "op_mlp": ["case.sparsity", "density", "t_dense", "t_sparse", "speedup", "ideal",
                    "efficiency"],
    "op_attn": ["case.sparsity", "density", "t_sdpa", "t_eager", "t_sparse",
                     "speedup_sdpa", "speedup_eager", "speedup_sdpa_fwd"],
    "exposer": ["case.model", "case.seq_len"] + [f"{m}_mean" for m in
                                                      SPARSITY_METRICS["attn"] +
                                                      SPARSITY_METRICS["mlp"]],
    "mlp_grain": ["case.model", "case.seq_len"] + [
        f"mlp_seq_union_t{t}_b{b}{r}" for t in (0, 5) for b in (1, 16, 64, 128)
        for r in ("", "_reordered") if b > 1 or not r] + ["mlp_token_t0", "mlp_token_t5",
                                                          "t_mlp_dense_mean"] + [
        f"{m}_mean" for t in (0, 5) for m in (f"t_mlp_column_t{t}", f"speedup_column_t{t}")
        + tuple(f"speedup_block_t{t}_b{b}{r}" for b in (64, 128) for r in ("", "_reordered"))]
    + [f"speedup_{k}_hi_max" for t in (0, 5) for k in (f"column_t{t}", *(
        f"block_t{t}_b{b}{r}" for b in (64, 128) for r in ("", "_reordered")))],
    "predictor_quality": ["case.model", "case.seq_len", "attn_recall_mean",
                               "attn_recall_min", "attn_precision_mean", "mlp_recall_mean",
                               "mlp_recall_min", "mlp_seq_recall_mean", "mlp_precision_mean",
                               "attn_density_pred_mean", "mlp_density_pred_mean"],
    "pattern": ["case.model", "case.seq_len", "case.mass", "doc_density"] + [
        f"{p}_{m}_mean" for p in ("exposer", "predictor", "longformer", "bigbird")
        for m in ("density", "mass", "speedup")],
    "gpt2": ["case.model", "case.method", "case.seq_len", "t_sdpa", "t_eager", "t_le",
             "speedup_sdpa", "speedup_eager", "density_attn", "density_doc", "density_mlp",
             "mlp_neuron_token_mean", "mlp_neuron_seq_union_mean", "mlp_token_mean",
             "mlp_seq_union_mean"],
    "scale": ["case.model", "case.seq_len", "t_sdpa", "t_eager", "t_le", "speedup_sdpa",
                   "speedup_eager", "density_attn", "density_doc", "density_mlp",
                   "keeps_everything"],
    # case.init=random: untrained model; case.masks=synthetic: random blocks at case.density
    "model_step": ["case.model", "case.init", "case.masks", "case.density", "case.seq_len",
                        "t_eager", "t_sdpa", "t_sdpa_docs", "t_le", "speedup_sdpa",
                        "speedup_sdpa_docs", "speedup_eager", "t_le_dispatch",
                        "dispatch_speedup_sdpa", "dispatch_speedup_sdpa_docs",
                        "dispatch_dense_runs", "break_even_attn", "break_even_mlp",
                        "memory_ratio", "memory_ratio_sdpa_docs", "memory_ratio_eager",
                        "density_attn", "density_doc", "density_mlp", "keeps_everything"],
}


def report(records: list[dict], outdir) -> None:
    outdir = Path(outdir)
    frame = records_frame(records)
    end2end(frame, outdir)
    memory(frame, outdir)
    part_time(frame, outdir, "attn")
    part_time(frame, outdir, "mlp")
    breakdown(frame, outdir)
    kernels(frame, outdir)
    predictor_curves(frame, outdir)
    scale(frame, outdir)
    gpt2(frame, outdir)
    patterns(frame, outdir)
    mlp_grain(frame, outdir)
    for kind in ("attn", "mlp"):
        operator(frame, outdir, kind)
        sparsity(frame, outdir, kind)
    for kind, cols in TABLE_COLUMNS.items():
        rows = of_kind(frame, kind)
        if rows.empty:
            continue
        keep = ["id"] + [c for c in cols if c in rows]
        write_table(rows[keep], outdir, kind)
