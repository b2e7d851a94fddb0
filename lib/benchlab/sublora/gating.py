"""The learned gates' figures of the SubLoRA report: gamma (share of B) per group and seed.

    from benchlab.sublora.gating import plot_heatmap; plot_heatmap(runs, 4000, "out")
"""

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ..core.report import new_figure, save_figure


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9,
            color="#777777")
    ax.set_xticks([])
    ax.set_yticks([])


def gate_matrix(runs: pd.DataFrame, d: int):
    """(seeds x layers) learned gamma at d, and the seeds; (None, []) without learned runs."""
    sub = runs[(runs["d"] == d) & (runs["mode"] == "learned") & runs["gates"].notna()]
    if sub.empty:
        return None, []
    width = max(len(g) for g in sub["gates"])
    mat = np.full((len(sub), width), np.nan)
    for i, g in enumerate(sub["gates"]):
        mat[i, :len(g)] = g
    return mat, [str(s) for s in sub["seed"]]


def plot_heatmap(runs: pd.DataFrame, d: int, outdir) -> None:
    mat, seeds = gate_matrix(runs, d)
    fig, ax = new_figure(size=(max(5.0, 0.9 * (mat.shape[1] if mat is not None else 4) + 2), 3.2))
    if mat is None:
        _note(ax, f"no learned-mode runs with gates for d={d}")
    else:
        im = ax.imshow(mat, aspect="auto", cmap="RdYlBu", vmin=0, vmax=1)
        for i in range(mat.shape[0]):
            for j in range(mat.shape[1]):
                if np.isfinite(mat[i, j]):
                    ax.text(j, i, f"{mat[i, j]:.3f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(mat.shape[1]))
        ax.set_xticklabels([f"L{j}" if j < mat.shape[1] - 1 or mat.shape[1] < 5 else "head"
                            for j in range(mat.shape[1])], fontsize=8)
        ax.set_yticks(range(len(seeds)))
        ax.set_yticklabels([f"seed {s}" for s in seeds], fontsize=8)
        ax.set_xlabel("group")
        fig.colorbar(im, ax=ax, label="gamma = share of B (init 0.5)")
    ax.set_title(f"learned gates, d={d}", fontsize=9)
    save_figure(fig, outdir, f"learned_gating_heatmap_d{d}")


def plot_trend(runs: pd.DataFrame, budgets, outdir) -> None:
    fig, ax = new_figure(size=(6, 4))
    drawn = False
    for j, d in enumerate(budgets):
        mat, _ = gate_matrix(runs, d)
        if mat is None:
            continue
        drawn = True
        mean = np.nanmean(mat, axis=0)
        std = np.nanstd(mat, axis=0, ddof=1) if mat.shape[0] > 1 else np.zeros_like(mean)
        ax.errorbar(np.arange(mat.shape[1]), mean, yerr=std, marker="o", capsize=3,
                    color=f"C{j}", label=f"d={d} ({mat.shape[0]} seeds)")
    if drawn:
        ax.axhline(0.5, ls="--", color="grey", lw=1, label="0.5: the init (equal split)")
        ax.set(ylim=(0, 1), xlabel="group (layer; last: lm_head if it has LoRA)",
               ylabel="gamma = share of B")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    else:
        _note(ax, "no learned-mode runs with gates")
    ax.set_title("learned allocation across groups (mean ± std over seeds)", fontsize=9)
    save_figure(fig, outdir, "learned_gating_trend")
