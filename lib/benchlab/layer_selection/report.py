"""Layer-selection report from benchmark records only: boxplots, scalability, tables, notes.

    benchlab report /tmp/ls/out.json --outdir reports
"""

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ..core.report import new_figure, of_kind, records_frame, save_figure, write_table

NOTE_70B = ("The llama2-70b score/norm files use LLaMA-65B shapes (80 blocks, 8192 hidden, no "
            "grouped-query attention), as in the seed's shared data.")
METHOD_ORDER = ("random", "norm_1", "norm_2", "norm_inf", "alphaprun")


def _part(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    part = of_kind(frame, kind).copy()
    if "time_median" not in part:
        part["time_median"] = np.nan
    return part


def _methods(df) -> list[str]:
    present = set(df["case.method"])
    return [m for m in METHOD_ORDER if m in present] + sorted(present - set(METHOD_ORDER))


def _boxplots(df: pd.DataFrame, outdir: Path) -> list[str]:
    ex = df[df["case.solver"] == "exact"]
    models = sorted(ex["case.model"].unique())
    names = []
    for model in models:
        sub = ex[ex["case.model"] == model]
        methods = _methods(sub)
        fig, axes = new_figure(1, 2, size=(10, 3.6))
        for ax, metric in zip(axes.ravel(), ("benefit", "ratio"), strict=True):
            ax.boxplot([sub.loc[sub["case.method"] == m, metric].to_numpy() for m in methods],
                       tick_labels=methods)
            ax.set_ylabel(f"AlphaPrun {metric}")
            ax.set_title(f"{model}: {metric} by method (exact solver)")
            ax.tick_params(axis="x", labelrotation=30)
        names.append(save_figure(fig, outdir, f"boxplot_{model}").name)
    shared = [m for m in models if not m.endswith("-tiny")] or models
    if shared:
        fig, axes = new_figure(1, len(shared), size=(3.6 * len(shared), 3.8))
        axes = np.atleast_1d(axes).ravel()
        for ax, model in zip(axes, shared, strict=True):
            sub = ex[ex["case.model"] == model]
            methods = _methods(sub)
            ax.boxplot([sub.loc[sub["case.method"] == m, "ratio"].to_numpy() for m in methods],
                       tick_labels=methods)
            ax.set_title(model + (" (65B shapes)" if model == "llama2_70b" else ""))
            ax.tick_params(axis="x", labelrotation=45)
        axes[0].set_ylabel("AlphaPrun ratio")
        names.append(save_figure(fig, outdir, "combined").name)
    return names


def _solve_tables(df: pd.DataFrame, outdir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    g = df.groupby(["case.model", "case.method", "case.solver"], sort=True)
    summary = g.agg(n=("benefit", "size"), benefit_mean=("benefit", "mean"),
                    ratio_mean=("ratio", "mean"), ratio_median=("ratio", "median"),
                    ratio_to_best_mean=("ratio_to_best", "mean"),
                    short_rate=("short", "mean"), gap_mean=("gap", "mean"),
                    gap_max=("gap", "max"), time_ms_median=("time_median", "median")).reset_index()
    summary["time_ms_median"] *= 1e3
    summary.columns = ["model", "method", "solver"] + list(summary.columns[3:])
    write_table(summary, outdir, "summary")
    heur = df[df["case.solver"] != "exact"]
    short = heur.groupby(["case.model", "case.solver"], sort=True).agg(
        instances=("short", "size"), short=("short", "sum"), short_rate=("short", "mean"),
        gap_mean=("gap", "mean"), gap_max=("gap", "max")).reset_index()
    short.columns = ["model", "solver"] + list(short.columns[2:])
    write_table(short, outdir, "shortfall")
    return summary, short


SOLVER_NAMES = {"upstream": "the published upstream DP", "ordered": "the `ordered` variant "
                "(upstream's DP with the missing \"verifier unused\" transition added)"}


def _loss_lines(short: pd.DataFrame) -> list[str]:
    """One sentence per model and order-fixed solver: how often and how much it loses."""
    lines = []
    for _, r in short.iterrows():
        name = SOLVER_NAMES.get(r["solver"], f"`{r['solver']}`")
        lines.append(f"- {r['model']}: {name} falls short of the optimum on "
                     f"{int(r['short'])} of {int(r['instances'])} instances; mean gap "
                     f"{100 * r['gap_mean']:.2f}%, max {100 * r['gap_max']:.1f}%.")
    return lines


def _speed_lines(tab: pd.DataFrame) -> list[str]:
    lines = []
    for _, r in tab.iterrows():
        lo, hi = r.get("speedup_lo", np.nan), r.get("speedup_hi", np.nan)
        iv = (f"95% bootstrap CI [{lo:.1f}, {hi:.1f}]" if np.isfinite(lo)
              else "interval not shown at this scale")
        rounds = int(r.get("rounds_timed", 0) or 0)
        how = (f"{rounds} rotated rounds after one warm-up batch each" if rounds > 1 else
               "one cold call each, timing disabled: not a speed claim")
        lines.append(f"- {r['model']}: exact is {r['speedup']:.1f}x faster than MILP ({iv}; "
                     f"{int(r['instances'])} instances, {how}).")
    return lines


def _scalability(sc: pd.DataFrame, ln: pd.DataFrame, outdir: Path) -> list[str]:
    names = []
    if len(sc):
        models = sorted(sc["case.model"].unique())
        fig, axes = new_figure(len(models), 2, size=(10, 3.2 * len(models)))
        axes = np.atleast_2d(axes)
        for row, model in zip(axes, models, strict=True):
            sub = sc[sc["case.model"] == model]
            ex = sub[sub["case.solver"] == "exact"].groupby("case.M").mean(numeric_only=True)
            for m in METHOD_ORDER:
                if f"ratio_{m}" in ex:
                    row[0].plot(ex.index, ex[f"ratio_{m}"], marker="o", label=m)
            row[0].set_title(f"{model}: ratio vs M (exact)")
            row[0].set_xlabel("verifiers M")
            row[0].set_ylabel("AlphaPrun ratio")
            row[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
            for ax in row:
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            _time_lines(row[1], sub, "case.M")
            row[1].set_title(f"{model}: solve time vs M")
            row[1].set_xlabel("verifiers M")
            row[1].set_ylabel("ms")
            if row[1].get_legend_handles_labels()[0]:
                row[1].legend(fontsize=7)
        names.append(save_figure(fig, outdir, "scalability").name)
        tab = sc.groupby(["case.model", "case.M", "case.solver"], sort=True).agg(
            time_ms=("time_median", "median"), gap_mean=("gap", "mean")).reset_index()
        tab["time_ms"] *= 1e3
        tab.columns = ["model", "M", "solver", "time_ms", "gap_mean"]
        write_table(tab, outdir, "scalability")
    if len(ln):
        fig, ax = new_figure(1, 1, size=(5, 3.6))
        _time_lines(ax, ln, "case.L")
        ax.set_xscale("log")
        ax.set_xlabel("layers L")
        ax.set_ylabel("ms")
        ax.set_title(f"solve time vs L (M={int(ln['case.M'].iloc[0])}, synthetic)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        names.append(save_figure(fig, outdir, "scaling_L").name)
    return names


def _time_lines(ax, frame, x: str) -> None:
    """Median solve time (ms) against `x`, one line per solver, on a log axis; a note instead when
    the run had no timings (--benchmark-disable)."""
    timed = frame.dropna(subset=["time_median"])
    if timed.empty:
        ax.text(0.5, 0.5, "no timings in these records\n(--benchmark-disable)", ha="center",
                va="center", transform=ax.transAxes)
        return
    for solver, grp in timed.groupby("case.solver", sort=True):
        t = grp.groupby(x)["time_median"].median()
        ax.plot(t.index, 1e3 * t.to_numpy(), marker="o", label=solver)
    ax.set_yscale("log")


def report(records: list[dict], outdir) -> None:
    """Tables (md/csv/tex), PNG figures and README.md under outdir, from records alone."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    frame = records_frame(records)
    if frame.empty:
        return
    lines = ["# Layer selection (MV-BCS) report", "", NOTE_70B, ""]
    solve = _part(frame, "solve")
    if len(solve):
        figs = _boxplots(solve, outdir)
        _, short = _solve_tables(solve, outdir)
        lines += ["Figures: " + ", ".join(figs), "",
                  "Shortfall of the order-fixed DPs against the exact optimum (objective gap):",
                  "", short.to_markdown(index=False, floatfmt=".4g"), "", *_loss_lines(short),
                  ""]
    figs = _scalability(_part(frame, "scalability"), _part(frame, "length"), outdir)
    if figs:
        lines += ["Scalability figures: " + ", ".join(figs), ""]
    speed = _part(frame, "speed")
    if len(speed):
        cols = ["case.model", "instances", "exact_ms_per_solve", "exact_s", "milp_s", "speedup",
                "speedup_lo", "speedup_hi", "rounds_timed", "max_rel_diff"]
        tab = speed[[c for c in cols if c in speed]].rename(columns={"case.model": "model"})
        for c in ("speedup_lo", "speedup_hi"):  # older records stored a missing one as "nan"
            if c in tab:
                tab[c] = pd.to_numeric(tab[c], errors="coerce")
        write_table(tab, outdir, "speed")
        lines += ["Exact DP vs scipy MILP on the same instances, side by side (one warm-up "
                  "batch each, then rotated rounds; speed-up = median of per-round ratios):", "",
                  tab.to_markdown(index=False, floatfmt=".4g"), "", *_speed_lines(tab), ""]
    alls = _part(frame, "all_shared")
    if len(alls):
        row = alls.iloc[0]
        lines += [f"All shared cases solved exactly: {int(row['instances'])} instances in "
                  f"{row['total_s']:.2f} s.", ""]
    (outdir / "README.md").write_text("\n".join(lines))
