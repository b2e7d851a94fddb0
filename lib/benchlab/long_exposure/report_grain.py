"""The Long Exposure report's exp-ablation-mlp-grain figure (mlp_grain's study): per-sequence MLP
density against block size and, where recorded, per-layer MLP time and mean speedups."""

import numpy as np

from benchlab.core.report import new_figure, of_kind, save_figure

from . import mlp_grain as mlp_grain_study
from .report_figures import NO_RECORDS, NotWritten, run_label

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
    """exp-ablation-mlp-grain: per-sequence MLP density against block size per threshold and,
    where recorded, mlp_grain's time study: per-layer MLP time per threshold, mean speedups."""
    name = "exp-ablation-mlp-grain"
    rows = of_kind(frame, "mlp_grain")
    if rows.empty:
        return NotWritten(name, NO_RECORDS)
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
