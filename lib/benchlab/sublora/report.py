"""The SubLoRA report: the seed's ten files from the sweep's records (no model needed).

    benchlab report /tmp/sublora/out.json --outdir reports      # rebuild from saved results

Files (budgets = the intrinsic dimensions d present in the records, e.g. 1000 and 2000):
  pareto_frontier_d{d}.png          KL (complexity) vs empirical bpd per allocation mode
  compression_comparison_d{d}.png   3 panels: KL vs bpd, KL vs bound, compressed size vs bound/bpd
  allocation_comparison_grid.png    2x2 bars: bpd, bound, compressed size, bpd change vs uniform
  learned_gating_heatmap_d{d}.png   gamma per layer (columns) and seed (rows), learned mode
  learned_gating_trend.png          gamma per layer, mean +- std over seeds, one line per d
  step_time.*, bound_eval_time.*    when present: subspace vs plain LoRA step, bound evaluation
  summary_table.{csv,tex,md}        mean and std over seeds per (d, mode): empirical bpd, KL,
                                    bound, compressed size, val loss (+ raw bpd and top-1 error
                                    and its bound when the records have them)
Error bars are the sample std (ddof=1) over seeds. A missing mode or budget leaves a panel with a
note instead of failing. Output depends only on the records.

What a sweep record must carry (read by `runs_frame`; first name found wins):
  case fields   d: case.intrinsic_dim | case.d;  mode: case.allocation_mode | case.mode
                ("uniform" | "fixed" | "learned"); ratio: case.allocation_ratio | case.ratio
                (r = d_B / d, fixed mode only); seed: case.seed | case.run_seed
  metrics       bound_value, empirical_bpd, kl_divergence, compressed_size_bits (required:
                records without bound_value, or whose case.kind is not "sweep", are other
                benchmarks and are ignored), val_loss,
                gates | learned_gates | gamma | gamma_B (learned mode: per-layer gamma = share
                of B, a list; ignored for other modes)
Each of these may also be a metric of the same name (e.g. metrics.seed) instead of a case field.
"""

import math

import numpy as np
import pandas as pd
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from ..core.report import flatten, new_figure, save_figure, write_table

ALIASES = {
    "d": ("case.intrinsic_dim", "case.d", "case.budget", "intrinsic_dim", "d", "budget"),
    "mode": ("case.allocation_mode", "case.mode", "allocation_mode", "mode"),
    "ratio": ("case.allocation_ratio", "case.ratio", "allocation_ratio", "ratio"),
    "seed": ("case.seed", "case.run_seed", "run_seed", "seed"),
    "gates": ("gates", "learned_gates", "gamma", "learned_gamma", "gamma_B"),
    "val_loss": ("val_loss", "best_val_loss"),
}
METRICS = ("empirical_bpd", "kl_divergence", "bound_value", "compressed_size_bits", "val_loss",
           "raw_bpd", "top1_error", "top1_error_bound")  # the last three: table only, optional
OPTIONAL = ("raw_bpd", "top1_error", "top1_error_bound")
FORK_MODES = {"fixed_aheavy": 0.2, "fixed_equal": 0.5, "fixed_bheavy": 0.8}
COLORS = {"uniform": "#555555", "fixed": ("#d62728", "#2ca02c", "#1f77b4"), "learned": "#9467bd"}
MARKERS = {"uniform": "s", "fixed": "o", "learned": "*"}
DEFAULT_BUDGETS = (1000, 2000)


def _pick(row: dict, names):
    for n in names:
        v = row.get(n)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            return v
    return None


def mode_label(mode: str, ratio) -> str:
    """'uniform', 'fixed r=0.2', 'learned' (r = d_B / d); the fork's names are mapped too."""
    mode = str(mode)
    if mode in FORK_MODES:
        mode, ratio = "fixed", FORK_MODES[mode]
    if mode == "fixed":
        return f"fixed r={float(ratio):g}" if ratio is not None else "fixed"
    return mode


def _order(label: str) -> tuple:
    kind = label.split()[0]
    rank = {"uniform": 0, "fixed": 1, "learned": 2}.get(kind, 3)
    return (rank, label)


def runs_frame(records: list[dict]) -> pd.DataFrame:
    """One row per sweep run: d, mode, ratio, label, seed, the metrics, gates (list or None)."""
    rows = []
    for rec in records:
        row = {"id": rec.get("case")}
        row.update(flatten(rec.get("config") or {}))
        row.update(rec.get("metrics") or {})
        if row.get("bound_value") is None or row.get("case.kind", "sweep") != "sweep":
            continue  # another benchmark (step time, bound evaluation time), not a sweep run
        mode = _pick(row, ALIASES["mode"])
        ratio = _pick(row, ALIASES["ratio"])
        d = _pick(row, ALIASES["d"])
        if mode is None or d is None:
            continue
        label = mode_label(mode, ratio)
        gates = _pick(row, ALIASES["gates"])
        rows.append({
            "id": row["id"], "d": int(d), "mode": label.split()[0],
            "ratio": float(ratio) if label.startswith("fixed r=") else float("nan"),
            "label": label, "seed": _pick(row, ALIASES["seed"]),
            **{m: _as_float(row.get(m) if m != "val_loss" else _pick(row, ALIASES[m]))
               for m in METRICS},
            "gates": [float(g) for g in gates] if isinstance(gates, list | tuple) and gates
            else None,
        })
    rows.sort(key=lambda r: (r["d"], _order(r["label"]), _num_first(r["seed"]), str(r["id"])))
    cols = ["id", "d", "mode", "ratio", "label", "seed", *METRICS, "gates"]
    return pd.DataFrame(rows, columns=cols)


def _num_first(v) -> tuple:
    try:
        return (0, float(v), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(v))


def _as_float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (ddof=1; 0 for a single seed) per (d, label). The label is a plain string, so
    no mode is dropped by the group-by (the fork grouped on a NaN ratio and lost `learned`)."""
    rows = []
    for (d, label), g in runs.groupby(["d", "label"], sort=False):
        row = {"d": int(d), "mode": g["mode"].iloc[0], "ratio": g["ratio"].iloc[0],
               "label": label, "n_seeds": int(len(g))}
        for m in METRICS:
            x = g[m].to_numpy(dtype=float)
            x = x[np.isfinite(x)]
            row[f"{m}_mean"] = float(x.mean()) if x.size else float("nan")
            row[f"{m}_std"] = float(x.std(ddof=1)) if x.size > 1 else 0.0
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["_o"] = frame["label"].map(_order)
    return frame.sort_values(["d", "_o"], kind="stable").drop(columns="_o").reset_index(drop=True)


def _style(label: str) -> tuple[str, str]:
    kind = label.split()[0]
    if kind == "fixed":
        ratio = float(label.split("=")[1]) if "=" in label else 0.5
        i = 0 if ratio < 0.35 else 1 if ratio < 0.65 else 2
        return COLORS["fixed"][i], MARKERS["fixed"]
    return COLORS.get(kind, "#8c564b"), MARKERS.get(kind, "D")


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9,
            color="#777777")
    ax.set_xticks([])
    ax.set_yticks([])


def _scatter(ax, summ: pd.DataFrame, x: str, y: str, *, hollow: bool = False,
             legend: bool = True) -> None:
    for _, r in summ.iterrows():
        color, marker = _style(r["label"])
        ax.errorbar(r[f"{x}_mean"], r[f"{y}_mean"], xerr=r[f"{x}_std"], yerr=r[f"{y}_std"],
                    fmt=marker, color=color, mfc="none" if hollow else color, capsize=3,
                    ms=11 if marker == "*" else 7, label=r["label"] if legend else None)


def _frontier(ax, sub: pd.DataFrame) -> None:
    """Dashed line through the modes no other mode beats on both KL and bpd (lower is better)."""
    pts = sorted(zip(sub["kl_divergence_mean"], sub["empirical_bpd_mean"], strict=True))
    front, best = [], float("inf")
    for kl, bpd in pts:
        if np.isfinite(kl) and bpd < best:
            front.append((kl, bpd))
            best = bpd
    if len(front) > 1:
        ax.plot(*zip(*front, strict=True), ls="--", color="grey", lw=1, zorder=0,
                label="Pareto frontier")


def plot_pareto(summ: pd.DataFrame, d: int, outdir) -> None:
    fig, ax = new_figure(size=(5.5, 4.2))
    sub = summ[summ["d"] == d] if not summ.empty else summ
    if sub.empty:
        _note(ax, f"no runs with d={d}")
    else:
        _scatter(ax, sub, "kl_divergence", "empirical_bpd")
        _frontier(ax, sub)
        ax.set_xlabel("complexity: KL (nats)")
        ax.set_ylabel("empirical bits per token (sampled docs)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    ax.set_title(f"complexity vs risk, d={d} (mean +- std over seeds)", fontsize=9)
    save_figure(fig, outdir, f"pareto_frontier_d{d}")


def plot_compression(summ: pd.DataFrame, d: int, outdir, random_bpd: float | None) -> None:
    fig, axes = new_figure(1, 3, size=(14, 4.2))
    axes = np.atleast_1d(axes).ravel()
    sub = summ[summ["d"] == d] if not summ.empty else summ
    titles = ["KL vs empirical bpd", "KL vs bound", "compressed size vs bound / bpd"]
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(f"{title} (d={d})", fontsize=9)
    if sub.empty:
        for ax in axes:
            _note(ax, f"no runs with d={d}")
        save_figure(fig, outdir, f"compression_comparison_d{d}")
        return
    _scatter(axes[0], sub, "kl_divergence", "empirical_bpd")
    axes[0].set(xlabel="KL (nats)", ylabel="empirical bpd")
    _scatter(axes[1], sub, "kl_divergence", "bound_value", legend=False)
    axes[1].set(xlabel="KL (nats)", ylabel="bound (bpd)")
    kb = sub.assign(size_kb_mean=sub["compressed_size_bits_mean"] / 8000,
                    size_kb_std=sub["compressed_size_bits_std"] / 8000)
    _scatter(axes[2], kb, "size_kb", "bound_value", legend=False)
    _scatter(axes[2], kb, "size_kb", "empirical_bpd", hollow=True, legend=False)
    axes[2].set(xlabel="compressed size (kB); filled: bound, hollow: empirical", ylabel="bpd")
    if random_bpd is not None:
        for ax in axes[1:]:
            ax.axhline(random_bpd, ls="--", color="grey", lw=1, label="log2 V (random guess)")
        axes[1].legend(fontsize=7)
    axes[0].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    save_figure(fig, outdir, f"compression_comparison_d{d}")


def _improvement(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run: 100 (uniform mean - bpd) / uniform mean, uniform of the same d (nan without)."""
    base = runs[runs["mode"] == "uniform"].groupby("d")["empirical_bpd"].mean()
    out = runs.copy()
    out["improvement"] = [100 * (base[d] - b) / base[d] if d in base.index else float("nan")
                          for d, b in zip(runs["d"], runs["empirical_bpd"], strict=True)]
    return out


def plot_grid(runs: pd.DataFrame, summ: pd.DataFrame, budgets, outdir) -> None:
    fig, axes = new_figure(2, 2, size=(12, 9))
    panels = [("empirical_bpd", 1.0, "empirical bpd"), ("bound_value", 1.0, "bound (bpd)"),
              ("compressed_size_bits", 1 / 8000, "compressed size (kB)"),
              ("improvement", 1.0, "bpd improvement over uniform (%)")]
    labels = sorted(set(summ["label"]) if not summ.empty else set(), key=_order)
    imp = _improvement(runs) if not runs.empty else runs
    width = 0.8 / max(len(budgets), 1)
    for ax, (metric, scale, ylabel) in zip(axes.ravel(), panels, strict=True):
        if not labels:
            _note(ax, "no runs")
            continue
        drawn = False
        for j, d in enumerate(budgets):
            means, stds = [], []
            for label in labels:
                g = imp[(imp["d"] == d) & (imp["label"] == label)][metric].to_numpy(float)
                g = g[np.isfinite(g)] * scale
                means.append(g.mean() if g.size else np.nan)
                stds.append(g.std(ddof=1) if g.size > 1 else 0.0)
            x = np.arange(len(labels)) + (j - (len(budgets) - 1) / 2) * width
            means, stds = np.asarray(means, float), np.asarray(stds, float)
            ok = np.isfinite(means)
            drawn |= bool(ok.any())
            ax.bar(x[ok], means[ok], width, yerr=stds[ok], capsize=3, label=f"d={d}",
                   color=[_style(lb)[0] for lb, k in zip(labels, ok, strict=True) if k],
                   alpha=0.55 + 0.45 * (j % 2), edgecolor="black",
                   hatch="" if j % 2 == 0 else "//")
            for xi in x[~ok]:  # a missing (d, mode) says so instead of looking like a zero
                ax.text(xi, 0, "n/a", ha="center", va="bottom", fontsize=7, rotation=90,
                        color="#777777")
        if not drawn:
            ax.cla()  # drop the "n/a" marks: the whole panel is empty
            _note(ax, "no uniform runs to compare with" if metric == "improvement"
                  else f"no data: {ylabel}")
            continue
        ax.set_xticks(np.arange(len(labels)))
        ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.axhline(0, color="black", lw=0.8)
        handles = [Patch(facecolor="white", edgecolor="black", hatch="" if j % 2 == 0 else "//",
                         label=f"d={d}") for j, d in enumerate(budgets)]
        ax.legend(handles=handles, fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    save_figure(fig, outdir, "allocation_comparison_grid")


def _gate_matrix(runs: pd.DataFrame, d: int):
    sub = runs[(runs["d"] == d) & (runs["mode"] == "learned") & runs["gates"].notna()]
    if sub.empty:
        return None, []
    width = max(len(g) for g in sub["gates"])
    mat = np.full((len(sub), width), np.nan)
    for i, g in enumerate(sub["gates"]):
        mat[i, :len(g)] = g
    return mat, [str(s) for s in sub["seed"]]


def plot_heatmap(runs: pd.DataFrame, d: int, outdir) -> None:
    mat, seeds = _gate_matrix(runs, d)
    fig, ax = new_figure(size=(max(5.0, 0.9 * (mat.shape[1] if mat is not None else 4) + 2), 3.2))
    if mat is None:
        _note(ax, f"no learned-mode runs with gates for d={d}")
    else:
        im = ax.imshow(mat, aspect="auto", cmap="RdYlBu", vmin=0, vmax=1)
        for i in range(mat.shape[0]):
            for j in range(mat.shape[1]):
                if np.isfinite(mat[i, j]):
                    ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(mat.shape[1]))
        ax.set_xticklabels([f"L{j}" for j in range(mat.shape[1])], fontsize=8)
        ax.set_yticks(range(len(seeds)))
        ax.set_yticklabels([f"seed {s}" for s in seeds], fontsize=8)
        ax.set_xlabel("layer (group)")
        fig.colorbar(im, ax=ax, label="gamma = share of B")
    ax.set_title(f"learned gates, d={d}", fontsize=9)
    save_figure(fig, outdir, f"learned_gating_heatmap_d{d}")


def plot_trend(runs: pd.DataFrame, budgets, outdir) -> None:
    fig, ax = new_figure(size=(6, 4))
    drawn = False
    for j, d in enumerate(budgets):
        mat, _ = _gate_matrix(runs, d)
        if mat is None:
            continue
        drawn = True
        mean = np.nanmean(mat, axis=0)
        std = np.nanstd(mat, axis=0, ddof=1) if mat.shape[0] > 1 else np.zeros_like(mean)
        layers = np.arange(mat.shape[1])
        ax.errorbar(layers, mean, yerr=std, marker="o", capsize=3, color=f"C{j}",
                    label=f"d={d} ({mat.shape[0]} seeds)")
    if drawn:
        ax.axhline(0.5, ls="--", color="grey", lw=1, label="equal split")
        ax.set(ylim=(0, 1), xlabel="layer (group)", ylabel="gamma = share of B")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    else:
        _note(ax, "no learned-mode runs with gates")
    ax.set_title("learned allocation across layers (mean +- std over seeds)", fontsize=9)
    save_figure(fig, outdir, "learned_gating_trend")


def summary_table(summ: pd.DataFrame) -> pd.DataFrame:
    metrics = [m for m in METRICS if m not in OPTIONAL
               or (not summ.empty and summ[f"{m}_mean"].notna().any())]
    cols = ["d", "label", "n_seeds"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    if summ.empty:
        return pd.DataFrame(columns=cols)
    return summ[cols].rename(columns={"label": "mode"})


TIMING = {  # case.kind -> (table name, columns), from bench/test_sublora.py's other benchmarks
    "step": ("step_time", ["case.d", "case.projector", "subspace_step_ms", "lora_step_ms",
                           "step_ratio", "ratio_goal"]),
    "bound": ("bound_eval_time", ["case.d", "case.mode", "s", "doc_tokens", "bound_eval_seconds",
                                  "train_seconds", "bound_over_train", "eval_bound_value"]),
}


def timing_tables(records: list[dict], outdir) -> None:
    """step_time.* (subspace vs plain LoRA step) and bound_eval_time.* when such records exist."""
    rows = []
    for rec in records:
        row = {"id": rec.get("case")}
        row.update(flatten(rec.get("config") or {}))
        row.update(rec.get("metrics") or {})
        rows.append(row)
    for kind, (name, cols) in TIMING.items():
        sub = [r for r in rows if r.get("case.kind") == kind]
        if sub:
            frame = pd.DataFrame([{c.removeprefix("case."): r.get(c) for c in cols} for r in sub])
            write_table(frame.sort_values(list(frame.columns[:2]), kind="stable"), outdir, name)


def report(records: list[dict], outdir, budgets=None) -> None:
    """Write the ten seed files (plus summary_table.md) under outdir from the sweep records, and
    the step-time and bound-evaluation-time tables when the records hold those benchmarks."""
    runs = runs_frame(records)
    present = sorted(set(int(d) for d in runs["d"]))
    budgets = sorted(int(b) for b in budgets) if budgets else (present or list(DEFAULT_BUDGETS))
    runs = runs[runs["d"].isin(budgets)].reset_index(drop=True)
    summ = summarize(runs)
    random_bpd = None
    for rec in records:
        v = (rec.get("metrics") or {}).get("random_guess_bpd")
        if v is not None:
            random_bpd = float(v)
            break
    for d in budgets:
        plot_pareto(summ, d, outdir)
        plot_compression(summ, d, outdir, random_bpd)
        plot_heatmap(runs, d, outdir)
    plot_grid(runs, summ, budgets, outdir)
    plot_trend(runs, budgets, outdir)
    write_table(summary_table(summ), outdir, "summary_table")
    timing_tables(records, outdir)
