"""The SubLoRA report from sweep records (no model needed): tables, figures and tested claims.

    benchlab report /tmp/sublora/out.json --outdir reports          # from saved bench results
    benchlab sublora analyze --results_dir out/sublora_scratch      # from run-all's folders

Files (budgets = the intrinsic dimensions d in the records):
  summary_table.{md,csv,tex}       per (d, mode), mean ± std over seeds (ddof=1): bound, raw and
                                   smoothed bpd, alpha(s), KL, size, val loss, the gaps to w = 0
                                   and to min(w = 0, unigram), non-vacuous runs, top-1 error
                                   bound; references (w = 0, unigram, bigram) first
  verdicts.{md,csv,tex}, claims.md the seed-level tests and goals (verdicts.py, claims.py)
  pareto_frontier_d{d}.png, compression_comparison_d{d}.png, allocation_comparison_grid.png,
  learned_gating_heatmap_d{d}.png, learned_gating_trend.png (gating.py)
  step_time.*, bound_eval_time.*   when the records hold those benchmarks
A sweep record (the bench's, or analyze's) carries d, mode, ratio, seed (metrics or case fields;
mode: w0 | unigram | bigram | uniform | grouped | fixed | learned; r = d_B / d, fixed only) and
sweep.run_point's metrics; records of other kinds are ignored.
"""

import numpy as np
import pandas as pd
from matplotlib.patches import Patch
from matplotlib.ticker import LogFormatter, NullFormatter

from ..core.report import new_figure, save_figure, write_table
from .claims import REFERENCES, W0_LABEL, timing_tables, write_claims
from .claims import _key as _order  # references (w = 0, unigram, bigram) first, then the modes
from .gating import _note, plot_heatmap, plot_trend
from .verdicts import PREREGISTERED

METRICS = ("bound_value", "raw_bpd", "empirical_bpd", "best_alpha", "kl_divergence",
           "compressed_size_bits", "val_loss", "top1_error", "top1_error_bound")
COLORS = {"w0": "#000000", "unigram": "#8c564b", "bigram": "#e377c2", "uniform": "#555555",
          "grouped": "#bcbd22", "fixed": ("#d62728", "#2ca02c", "#1f77b4"), "learned": "#9467bd"}
MARKERS = {"w0": "X", "unigram": "P", "bigram": "P", "uniform": "s", "grouped": "D", "fixed": "o",
           "learned": "*"}
LABELS = {"uniform": "uniform (global)", "grouped": "grouped (uniform per group)"}
STUDIES = {"scratch": "SubLoRA from scratch (seeded random theta0, free in the message)",
           "zoo-trained": "fine-tuning bound: SubLoRA over the zoo-trained prior"}


def mode_label(mode: str, ratio) -> str:
    """'w=0 (untrained)', 'unigram', 'bigram', 'uniform (global)', 'grouped (uniform per
    group)', 'fixed r=0.2', 'learned' (r = d_B / d)."""
    if mode == "w0":
        return W0_LABEL
    return f"fixed r={float(ratio):g}" if mode == "fixed" else LABELS.get(mode, str(mode))


def runs_frame(records: list[dict]) -> pd.DataFrame:
    """One row per sweep run: d, mode, ratio, label, seed, init_from, the metrics, gates."""
    rows = []
    for rec in records:
        case = (rec.get("config") or {}).get("case") or {}
        met = rec.get("metrics") or {}
        kind = rec.get("kind") or case.get("kind", "sweep")
        if kind != "sweep" or met.get("bound_value") is None:
            continue  # another benchmark (step time, bound evaluation time)
        src = {**case, **met}  # run_point emits d, mode, ratio, seed as metrics too
        mode = src["mode"]
        gates = met.get("gamma_B")
        rows.append({
            "id": rec.get("case"), "d": int(src["d"]), "mode": mode,
            "ratio": float(src["ratio"]) if mode == "fixed" else float("nan"),
            "label": mode_label(mode, src.get("ratio")), "seed": src.get("seed"),
            "init_from": met.get("init_from"),
            **{m: _as_float(met.get(m)) for m in METRICS},
            "gates": [float(g) for g in gates] if mode == "learned" and gates else None})
    rows.sort(key=lambda r: (r["d"], _order(r["label"]), str(r["seed"]), str(r["id"])))
    cols = ["id", "d", "mode", "ratio", "label", "seed", "init_from", *METRICS, "gates"]
    return pd.DataFrame(rows, columns=cols)


def _as_float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (ddof=1; 0 for one seed) per (d, label), plus the paired gaps to w = 0 (on the
    label, a plain string: the fork grouped on a NaN ratio and dropped modes)."""
    rows, log2v = [], float(runs.attrs.get("random_guess_bpd", np.inf))
    for (d, label), g in runs.groupby(["d", "label"], sort=False):
        row = {"d": int(d), "mode": g["mode"].iloc[0], "label": label, "n_seeds": int(len(g))}
        for m in METRICS:
            row[f"{m}_mean"], row[f"{m}_std"] = _mean_std(g[m])
        row["alphas"] = "/".join(f"{a:g}" for a in sorted(set(g["best_alpha"].dropna())))
        row["non_vacuous"] = f"{int((g['bound_value'] < log2v).sum())}/{len(g)}"
        for name, gap in (("below_w0", w0_gaps(runs, d, g)), ("below_ref", ref_gaps(runs, d, g))):
            row[f"{name}_mean"] = float(gap.mean()) if gap.size else float("nan")
            row[f"{name}_min"] = float(gap.min()) if gap.size else float("nan")
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["_o"] = frame["label"].map(_order)
    return frame.sort_values(["d", "_o"], kind="stable").drop(columns="_o").reset_index(drop=True)


def _mean_std(x) -> tuple[float, float]:
    """Mean and std (ddof=1; 0 for one value) of the finite entries of x (nan, 0 for none)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    mean = float(x.mean()) if x.size else float("nan")
    return mean, float(x.std(ddof=1)) if x.size > 1 else 0.0


def w0_gaps(runs: pd.DataFrame, d: int, group: pd.DataFrame) -> np.ndarray:
    """Per seed: w = 0 bound - this run's bound (bits/token), seeds present in both."""
    base = runs[(runs["d"] == d) & (runs["mode"] == "w0")].set_index("seed")["bound_value"]
    if group["mode"].iloc[0] == "w0":
        return np.array([])
    return np.array([base[s] - b for s, b in zip(group["seed"], group["bound_value"], strict=True)
                     if s in base.index], dtype=float)


def ref_gaps(runs: pd.DataFrame, d: int, group: pd.DataFrame) -> np.ndarray:
    """Per seed of a trained mode: min(w = 0 bound of the seed, unigram bound) - this run's
    bound (bits/token): the gain over the better reference; empty for a reference row."""
    if group["mode"].iloc[0] in REFERENCES:
        return np.array([])
    base = runs[(runs["d"] == d) & (runs["mode"] == "w0")].groupby("seed")["bound_value"].mean()
    uni = runs[(runs["d"] == d) & (runs["mode"] == "unigram")]["bound_value"]
    ref = {s: min(b, float(uni.mean())) if uni.size else b for s, b in base.items()}
    return np.array([ref[s] - b for s, b in zip(group["seed"], group["bound_value"], strict=True)
                     if s in ref], dtype=float)


def vacuity_cell(mean: float, std: float, trivial: float, fmt: str = ".3f") -> str:
    """The one vacuity rule of every table: a (mean) bound >= the trivial bound (log2 V for bits
    per token, 1 for an error rate) is 'vacuous', else the number (± std over seeds)."""
    if not np.isfinite(mean):
        return "n/a"
    return "vacuous" if mean >= trivial else f"{mean:{fmt}} ± {std:{fmt}}"


def summary_table(summ: pd.DataFrame, random_bpd: float = np.inf) -> pd.DataFrame:
    """The committed table: numbers as text with their std (vacuity_cell)."""
    cols = ["d", "mode", "n_seeds", "bound", "below w=0 (min)", "below min(w=0, unigram) (min)",
            "raw bpd", "smoothed bpd", "alpha", "KL (nats)", "size (kbit)", "val loss",
            "non-vacuous", "top-1 error bound"]
    if summ.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for _, r in summ.iterrows():
        def pm(m, scale=1.0, fmt=".3f", r=r):  # never "vacuous": no trivial value
            return vacuity_cell(r[f"{m}_mean"] * scale, r[f"{m}_std"] * scale, np.inf, fmt)
        def gap(col, r=r):
            if r["mode"] in REFERENCES:
                return "reference"
            mean = r[f"{col}_mean"]
            return "n/a" if not np.isfinite(mean) else f"{mean:.3f} ({r[f'{col}_min']:.3f})"
        rows.append([r["d"], r["label"], r["n_seeds"],
                     vacuity_cell(r["bound_value_mean"], r["bound_value_std"], random_bpd),
                     gap("below_w0"), gap("below_ref"), pm("raw_bpd"),
                     pm("empirical_bpd"), r["alphas"], pm("kl_divergence", fmt=".0f"),
                     pm("compressed_size_bits", 1e-3, ".2f"), pm("val_loss"), r["non_vacuous"],
                     vacuity_cell(r["top1_error_bound_mean"], r["top1_error_bound_std"], 1.0)])
    return pd.DataFrame(rows, columns=cols)


# -- figures -------------------------------------------------------------------------------------

def _style(label: str) -> tuple[str, str]:
    kind = label.split()[0]
    if kind == "fixed":
        ratio = float(label.split("=")[1])
        return COLORS["fixed"][0 if ratio < 0.35 else 1 if ratio < 0.65 else 2], MARKERS["fixed"]
    kind = "w0" if label == W0_LABEL else kind
    return COLORS.get(kind, "#8c564b"), MARKERS.get(kind, "D")


def _scatter(ax, summ: pd.DataFrame, x: str, y: str, *, legend: bool = True) -> None:
    for _, r in summ.iterrows():
        color, marker = _style(r["label"])
        ax.errorbar(r[f"{x}_mean"], r[f"{y}_mean"], xerr=r[f"{x}_std"], yerr=r[f"{y}_std"],
                    fmt=marker, color=color, capsize=3, ms=11 if marker in "*X" else 7,
                    label=r["label"] if legend else None)


def _frontier(ax, sub: pd.DataFrame) -> None:
    """Dashed line through the modes no other mode beats on both KL and raw bpd."""
    pts = sorted(zip(sub["kl_divergence_mean"], sub["raw_bpd_mean"], strict=True))
    front, best = [], float("inf")
    for kl, bpd in pts:
        if np.isfinite(kl) and bpd < best:
            front.append((kl, bpd))
            best = bpd
    if len(front) > 1:
        ax.plot(*zip(*front, strict=True), ls="--", color="grey", lw=1, zorder=0,
                label="Pareto frontier")


def plot_pareto(summ: pd.DataFrame, d: int, outdir, title: str = "") -> None:
    fig, ax = new_figure(size=(5.8, 4.4))
    sub = summ[summ["d"] == d] if not summ.empty else summ
    if sub.empty:
        _note(ax, f"no runs with d={d}")
    else:
        _scatter(ax, sub, "kl_divergence", "raw_bpd")
        _frontier(ax, sub[~sub["mode"].isin(REFERENCES)])
        ax.set_xscale("log")
        ax.set_xlabel("complexity: KL (nats)")
        ax.set_ylabel("raw bits per token (sampled docs, unsmoothed)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    ax.set_title(f"complexity vs risk, d={d} (mean ± std over seeds)\n{title}", fontsize=8)
    save_figure(fig, outdir, f"pareto_frontier_d{d}")


def plot_compression(summ: pd.DataFrame, d: int, outdir, random_bpd, title: str = "") -> None:
    fig, axes = new_figure(1, 3, size=(15, 4.4))
    axes = np.atleast_1d(axes).ravel()
    sub = summ[summ["d"] == d] if not summ.empty else summ
    titles = ["KL vs raw bpd", "KL vs bound", "compressed size vs bound (solid) / bpd (dashed)"]
    for ax, t in zip(axes, titles, strict=True):
        ax.set_title(f"{t} (d={d})", fontsize=9)
    if sub.empty:
        for ax in axes:
            _note(ax, f"no runs with d={d}")
        save_figure(fig, outdir, f"compression_comparison_d{d}")
        return
    _scatter(axes[0], sub, "kl_divergence", "raw_bpd")
    axes[0].set(xlabel="KL (nats, log)", ylabel="raw bpd", xscale="log")
    _scatter(axes[1], sub, "kl_divergence", "bound_value", legend=False)
    axes[1].set(xlabel="KL (nats, log)", ylabel="bound (bits/token)", xscale="log")
    ax = axes[2]  # the seed's panel: one line per mode through its budgets, log size axis
    for label, g in summ.groupby("label", sort=False):
        g = g.sort_values("compressed_size_bits_mean")
        color, marker = _style(label)
        size = g["compressed_size_bits_mean"] / 1e3
        ax.plot(size, g["bound_value_mean"], ls="-", marker=marker, color=color, label=label)
        ax.plot(size, g["raw_bpd_mean"], ls="--", marker=marker, color=color, mfc="none")
        here = g[g["d"] == d]
        ax.scatter(here["compressed_size_bits_mean"] / 1e3, here["bound_value_mean"], s=120,
                   facecolors="none", edgecolors=color, zorder=3)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(0, 0)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="compressed size (kbit, log); ringed: this d", ylabel="bits per token")
    if random_bpd is not None and np.isfinite(random_bpd):
        for a in axes[1:]:
            a.axhline(random_bpd, ls="--", color="grey", lw=1, label="log2 V (random guess)")
    axes[0].legend(fontsize=7)
    ax.legend(fontsize=7)
    for a in axes:
        a.grid(alpha=0.3, which="both")
    fig.suptitle(title, fontsize=9)
    save_figure(fig, outdir, f"compression_comparison_d{d}")


def plot_grid(runs: pd.DataFrame, budgets, outdir, title: str = "") -> None:
    fig, axes = new_figure(2, 2, size=(12, 9))
    w0 = runs[runs["mode"] == "w0"].set_index(["d", "seed"])["bound_value"].to_dict()
    runs = runs.assign(below_w0=[w0.get((d, s), np.nan) - b for d, s, b in zip(
        runs["d"], runs["seed"], runs["bound_value"], strict=True)])
    panels = [("raw_bpd", 1.0, "raw bpd (unsmoothed)"), ("bound_value", 1.0, "bound (bits/token)"),
              ("compressed_size_bits", 1e-3, "compressed size (kbit, log)"),
              ("below_w0", 1.0, "bound below the w = 0 bound (bits/token)")]
    labels = sorted(set(runs["label"]), key=_order)
    width = 0.8 / max(len(budgets), 1)
    for ax, (metric, scale, ylabel) in zip(axes.ravel(), panels, strict=True):
        if not labels:
            _note(ax, "no runs")
            continue
        for j, d in enumerate(budgets):
            here = runs[runs["d"] == d]
            means, stds = np.array([_mean_std(here[here["label"] == label][metric] * scale)
                                    for label in labels]).T
            x = np.arange(len(labels)) + (j - (len(budgets) - 1) / 2) * width
            ok = np.isfinite(means)
            ax.bar(x[ok], means[ok], width, yerr=stds[ok], capsize=3,
                   color=[_style(lb)[0] for lb, k in zip(labels, ok, strict=True) if k],
                   alpha=0.55 + 0.45 * (j % 2), edgecolor="black",
                   hatch="" if j % 2 == 0 else "//")
            for xi in x[~ok]:  # a missing (d, mode) says so instead of looking like a zero
                ax.text(xi, 0.01, "n/a", ha="center", va="bottom", fontsize=7, rotation=90,
                        color="#777777", transform=ax.get_xaxis_transform())  # any y scale
        ax.set_xticks(np.arange(len(labels)))
        ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
        if metric == "compressed_size_bits":  # the bigram's table is ~50x a trained message
            ax.set_yscale("log")
        else:
            ax.axhline(0, color="black", lw=0.8)
        handles = [Patch(facecolor="white", edgecolor="black", hatch="" if j % 2 == 0 else "//",
                         label=f"d={d}") for j, d in enumerate(budgets)]
        ax.legend(handles=handles, fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, outdir, "allocation_comparison_grid")


def study_title(runs: pd.DataFrame) -> str:
    kinds = sorted(set(runs["init_from"].dropna())) if not runs.empty else []
    return "; ".join(STUDIES.get(k, f"theta0 from {k}") for k in kinds)


def report(records: list[dict], outdir, budgets=None) -> None:
    """Write the tables, figures and claims of the module docstring under outdir."""
    runs = runs_frame(records)
    present = sorted(set(int(d) for d in runs["d"]))
    budgets = sorted(int(b) for b in budgets) if budgets else present
    runs = runs[runs["d"].isin(budgets)].reset_index(drop=True)
    random_bpd = next((float(r["metrics"]["random_guess_bpd"]) for r in records
                       if (r.get("metrics") or {}).get("random_guess_bpd") is not None), None)
    runs.attrs["random_guess_bpd"] = random_bpd if random_bpd is not None else np.inf
    summ = summarize(runs)
    title = study_title(runs)
    for d in budgets:
        plot_pareto(summ, d, outdir, title)
        plot_compression(summ, d, outdir, random_bpd, title)
        plot_heatmap(runs, d, outdir)
    if budgets:
        plot_grid(runs, budgets, outdir, title)
        plot_trend(runs, budgets, outdir)
    write_table(summary_table(summ, runs.attrs["random_guess_bpd"]), outdir, "summary_table")
    if not runs.empty:
        write_claims(runs, summ, outdir, title=title, random_bpd=random_bpd, tests=PREREGISTERED)
    timing_tables(records, outdir)
