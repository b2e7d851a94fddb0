"""The Long Exposure report's figures (exp-ablation-mlp-grain: report_grain). A figure without
records is not written: its function returns a `NotWritten` (name and why) for figures.md. Titles
name the scale and model(s) that ran (`run_label`) and the densities LE ran at (`density_label`).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchlab.core.report import new_figure, of_kind, save_figure

from .exposer import METRICS as SPARSITY_METRICS  # the exposer's per-layer densities

# per-document SDPA (the exact dense reference) first; records without a mode leave it out
MODES = (("t_sdpa_docs", "per-document SDPA"), ("t_sdpa_causal", "causal SDPA (crosses docs)"),
         ("t_sdpa", "SDPA, document mask"), ("t_eager", "eager, document mask"),
         ("t_le", "Long Exposure"))


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


NO_RECORDS = "no records for this figure in this run"


@dataclass(frozen=True)
class NotWritten:
    """A figure left out of the report, and why (no placeholder image is written)."""
    name: str
    why: str


def _bars(ax, labels, series: dict, ylabel: str):
    """Grouped bars: one group per label, one bar per series entry that has a value."""
    series = {k: v for k, v in series.items() if np.isfinite(np.asarray(v, float)).any()}
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(x, labels, rotation=20)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)


def _mode_bars(ax, labels, rows, ylabel: str = "step time (ms)"):
    """_bars of the step time of every recorded MODES entry, in ms."""
    _bars(ax, labels, {label: 1e3 * _col(rows, key).to_numpy() for key, label in MODES}, ylabel)


def end2end(frame, outdir):
    rows = of_kind(frame, "end2end")
    if rows.empty:
        return NotWritten("exp-overall-end2end", NO_RECORDS)
    lens = sorted(rows["case.seq_len"].unique())
    fig, axes = new_figure(1, len(lens), size=(4.8 * len(lens), 3.6))
    for ax, L in zip(np.ravel(axes), lens, strict=True):
        sub = rows[rows["case.seq_len"] == L]
        _mode_bars(ax, list(sub["case.method"]), sub)
        ax.set_title(f"L={int(L)}: {density_label(sub)}", fontsize=8)
    fig.suptitle(f"exp-overall-end2end: {run_label(rows)}", fontsize=9)
    return save_figure(fig, outdir, "exp-overall-end2end")


MEMORY_LINES = (("dense", "dense SDPA"), ("eager", "dense eager"), ("le", "LE (predicted)"),
                ("oracle", "LE-optimal (oracle masks)"))


def memory(frame, outdir):
    """Fig 8: training memory against sequence length, one panel per PEFT method, one figure
    exp-overall-memory-<model> per artifact panel (a stand-in model says so): tensors counted,
    solid; on CUDA the allocator's peak, dashed."""
    rows = of_kind(frame, "memory")
    paths = []
    for panel in ("exp-overall-memory-opt-350m", "exp-overall-memory-opt-1.3b"):
        sub = rows[rows["case.figure"] == panel] if not rows.empty else rows
        if sub.empty:
            paths.append(NotWritten(panel, "no memory records for this artifact panel in "
                                "this run (this scale's memory_models do not run it)"))
            continue
        models = [m.rstrip("/").rsplit("/", 1)[-1] for m in _unique(sub, "case.model")]
        name = f"exp-overall-memory-{'+'.join(models)}"
        stands = "" if name == panel else f" (stands in for the artifact's {panel})"
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
        fig.suptitle(f"{name}{stands}: {run_label(sub)}; tensors counted (weights, grads + "
                     "AdamW, saved activations)" + ("; dashed: CUDA allocator peak" if peaks
                                                    else ""), fontsize=8)
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
        return NotWritten(name, NO_RECORDS)
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
        return NotWritten(name, NO_RECORDS)
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
        return NotWritten(name, NO_RECORDS)
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
    """Fig 11 left: LoRA loss curves per mask source, as trained and MLP-reordered."""
    name = "exp-ablation-predictor"
    rows = of_kind(frame, "predictor")
    if rows.empty or "losses" not in rows:
        return NotWritten(name, NO_RECORDS)
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
        return NotWritten("exp-scale-model", NO_RECORDS)
    fig, ax = new_figure()
    _mode_bars(ax, list(rows["case.model"]), rows, "LoRA step time (ms)")
    ax.set_title(f"exp-scale-model: {run_label(rows)}, L={int(rows['case.seq_len'].iloc[0])}\n"
                 f"{density_label(rows)}", fontsize=8)
    return save_figure(fig, outdir, "exp-scale-model")


def gpt2(frame, outdir):
    """Fig 13: a step of every PEFT method on GPT-2, dense (eager, SDPA) vs LE, per model."""
    name = "exp-scale-gpt2"
    rows = of_kind(frame, "gpt2")
    if rows.empty:
        return NotWritten(name, NO_RECORDS)
    models = list(dict.fromkeys(rows["case.model"]))
    fig, axes = new_figure(1, len(models), size=(4.8 * len(models), 3.6))
    for ax, model in zip(np.ravel(axes), models, strict=True):
        sub = rows[rows["case.model"] == model]
        _mode_bars(ax, [f"{r['case.method']}\n{le_label(r)}" for _, r in sub.iterrows()], sub)
        ax.tick_params(axis="x", labelsize=5)
        act = sub.iloc[0]
        ax.set_title(f"{model}, L={int(sub['case.seq_len'].iloc[0])}: {density_label(sub)}\n"
                     f"GELU MLP runs dense: active per token "
                     f"{act.get('mlp_neuron_token_mean', np.nan):.2f} of neurons, sequence "
                     f"union {act.get('mlp_seq_union_mean', np.nan):.2f} of blocks", fontsize=7)
    fig.suptitle(f"{name}: {run_label(rows)}", fontsize=9)
    return save_figure(fig, outdir, name)


def patterns(frame, outdir):
    """Fig 9 (exp-ablation-attn-patterns): per layer and pattern (patterns.py), the attention
    mass covered, the block density and the operator speedup."""
    from .patterns import PATTERNS

    name = "exp-ablation-attn-patterns"
    rows = of_kind(frame, "pattern")
    if rows.empty:
        return NotWritten(name, NO_RECORDS)
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
        return NotWritten(name, NO_RECORDS)
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


def sparsity(frame, outdir, kind: str):
    """exp-ablation-{attn,mlp}-sparsity: per-layer sparsity (1 - density) per token vs unions
    over the sequence and the batch (the shadowy effect)."""
    name = f"exp-ablation-{kind}-sparsity"
    rows = of_kind(frame, "exposer")
    if rows.empty:
        return NotWritten(name, NO_RECORDS)
    row = rows.iloc[0]
    series = {m: 1.0 - np.asarray(row[m], float) for m in SPARSITY_METRICS
              if m.startswith(f"{kind}_") and m in rows
              and isinstance(row[m], list | tuple | np.ndarray)}
    if not series:
        return NotWritten(name, "exposer records carry no per-layer densities")
    fig, ax = new_figure(size=(6.0, 3.4))
    n = len(next(iter(series.values())))
    _bars(ax, [f"layer {i}" for i in range(n)], series, "sparsity (1 - density)")
    ax.set_ylim(0, 1)
    ax.set_title(f"{name}: {run_label(rows)}, L={int(row['case.seq_len'])}", fontsize=9)
    return save_figure(fig, outdir, name)
