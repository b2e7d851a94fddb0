"""Layer-selection report from benchmark records only: boxplots, scalability, tables, notes; and
every figure of the seed's command set (`{model}_comparison`, `combined_comparison`,
`scalability_plot`), drawn here for the CLI (`run --plot`, `plot`) and for `files` records.

    benchlab report /tmp/ls/out.json --outdir reports
    benchlab report exp/store.jsonl          # a `benchlab layer-selection run` output folder's
"""

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ..core.report import new_figure, of_kind, records_frame, save_figure, write_table
from . import study
from .data import VALUE_METHODS, method_order

NOTE_70B = ("The llama2-70b score/norm files use LLaMA-65B shapes (80 blocks, 8192 hidden, no "
            "grouped-query attention), as in the seed's shared data.")


def _part(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    part = of_kind(frame, kind).copy()
    if "time_median" not in part:
        part["time_median"] = np.nan
    return part


def _by_method(df: pd.DataFrame, metric: str) -> dict[str, np.ndarray]:
    return {m: df.loc[df["case.method"] == m, metric].to_numpy()
            for m in method_order(set(df["case.method"]))}


def _boxplots(df: pd.DataFrame, outdir: Path) -> list[str]:
    ex = df[df["case.solver"] == "exact"]
    models = sorted(ex["case.model"].unique())
    names = []
    for model in models:
        fig, axes = new_figure(1, 2, size=(10, 3.6))
        for ax, metric in zip(axes.ravel(), ("benefit", "ratio"), strict=True):
            _boxes(ax, _by_method(ex[ex["case.model"] == model], metric))
            ax.set(ylabel=f"AlphaPrun {metric}",
                   title=f"{model}: {metric} by method (exact solver)")
        names.append(save_figure(fig, outdir, f"boxplot_{model}").name)
    shared = [m for m in models if not m.endswith("-tiny")] or models
    if shared:
        per_model = {m: _by_method(ex[ex["case.model"] == m], "ratio") for m in shared}
        names.append(_combined_figure(per_model, outdir, "combined").name)
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
        models = model_order(sc["case.model"].unique())
        fig, axes = new_figure(len(models), 2, size=(10, 3.2 * len(models)))
        axes = np.atleast_2d(axes)
        for row, model in zip(axes, models, strict=True):
            sub = sc[sc["case.model"] == model]
            ex = sub[sub["case.solver"] == "exact"]
            _ratio_vs_M(row[0], ex["case.M"].to_numpy(),
                        {m: ex[f"ratio_{m}"].to_numpy() for m in VALUE_METHODS
                         if f"ratio_{m}" in ex})
            row[0].set(title=f"{model}: ratio vs M (exact)", xlabel="verifiers M",
                       ylabel="AlphaPrun ratio")
            row[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
            row[1].xaxis.set_major_locator(MaxNLocator(integer=True))
            _time_lines(row[1], sub, "case.M", fontsize=7)
            row[1].set(title=f"{model}: solve time vs M", xlabel="verifiers M")
        names.append(save_figure(fig, outdir, "scalability").name)
        tab = sc.groupby(["case.model", "case.M", "case.solver"], sort=True).agg(
            time_ms=("time_median", "median"), gap_mean=("gap", "mean")).reset_index()
        tab["time_ms"] *= 1e3
        tab.columns = ["model", "M", "solver", "time_ms", "gap_mean"]
        write_table(tab, outdir, "scalability")
    if len(ln):
        fig, ax = new_figure(1, 1, size=(5, 3.6))
        _time_lines(ax, ln, "case.L")
        ax.set(xscale="log", xlabel="layers L",
               title=f"solve time vs L (M={int(ln['case.M'].iloc[0])}, synthetic)")
        names.append(save_figure(fig, outdir, "scaling_L").name)
    return names


def _time_lines(ax, frame, x: str, **legend) -> None:
    """Median solve time (ms) against `x`, one line per solver, on a log axis, with a legend; a
    note instead when the run had no timings (--benchmark-disable)."""
    ax.set_ylabel("ms")
    timed = frame.dropna(subset=["time_median"])
    if timed.empty:
        ax.text(0.5, 0.5, "no timings in these records\n(--benchmark-disable)", ha="center",
                va="center", transform=ax.transAxes)
        return
    for solver, grp in timed.groupby("case.solver", sort=True):
        t = grp.groupby(x)["time_median"].median()
        ax.plot(t.index, 1e3 * t.to_numpy(), marker="o", label=solver)
    ax.set_yscale("log")
    ax.legend(**legend)


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
    if len(solve) and "original_case" in solve:
        lines += _studies(solve, outdir)
    figs = _scalability(_part(frame, "scalability"), _part(frame, "length"), outdir)
    if figs:
        lines += ["Scalability figures: " + ", ".join(figs), ""]
    lines += _goals(_part(frame, "upstream"), _part(frame, "scalability"), outdir)
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
    files = [r for r in records if r.get("kind") == "files"]
    if files:
        figs = files_figures(files, outdir)
        lines += ["`benchlab layer-selection run` records (the seed's figures and summaries): "
                  + ", ".join(p.name for p in figs), ""]
    (outdir / "README.md").write_text("\n".join(lines))


def _md(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".6g")


def _studies(solve: pd.DataFrame, outdir: Path) -> list[str]:
    """Issue 40: both problem definitions, the upstream shortfall split, the paired tests."""
    defs = study.definitions_table(solve)
    write_table(defs, outdir, "definitions")
    split = study.shortfall_split(solve)
    summary = study.split_summary(split) if len(split) else pd.DataFrame()
    split_t = study.split_tests(split) if len(split) else pd.DataFrame()
    method_t = study.method_tests(solve)
    out = ["## Problem definitions, the upstream shortfall, value methods compared", "",
           study.NOTES, "Tables: definitions (each definition's mean ratio, benefit over its own "
           "best, rank), shortfall_split, split_tests, method_tests.", ""]
    if len(summary):
        write_table(summary, outdir, "shortfall_split")
        out += ["Upstream's gap to the any-order optimum, split (means over instances, as "
                "fractions of the exact optimum):", "", _md(summary), ""]
    for name, table in (("split_tests", split_t), ("method_tests", method_t)):
        if len(table):
            write_table(table, outdir, name, floatfmt=".6g")
    if len(split_t):
        out += ["The bug against the order effect, per model (\"smaller\": the bug's part of "
                "upstream's gap is smaller than the order effect's):", "", _md(split_t), ""]
    return out + study.lines(defs, split_t, method_t, pd.DataFrame()) + [""]


def _goals(up: pd.DataFrame, scal: pd.DataFrame, outdir: Path) -> list[str]:
    """Issue 41: exact vs the upstream DP side by side, and the M = 96 solve-time goal."""
    out = []
    if len(up):
        cols = ["case.model", "instances", "exact_ms_per_solve", "upstream_ms_per_solve",
                "exact_vs_upstream", "exact_vs_upstream_lo", "exact_vs_upstream_hi",
                "rounds_timed", "upstream_short"]
        tab = up[[c for c in cols if c in up]].rename(columns={"case.model": "model"})
        write_table(tab, outdir, "speed_upstream")
        out += ["Exact DP vs the upstream DP it corrects, the same instances side by side "
                "(exact_vs_upstream = median over rounds of exact / upstream time; upstream_short"
                " = instances where upstream's optimum is below exact's):", "", _md(tab), ""]
    goals = study.speed_goals(up, scal)
    if len(goals):
        write_table(goals, outdir, "goals", floatfmt=".6g")
        out += ["Speed goals (a goal: no test; met when the whole 95% interval over rounds lies "
                "below it):", "", _md(goals), "",
                *study.lines(pd.DataFrame(columns=["model", "definition", "rank", "method"]),
                             pd.DataFrame(), pd.DataFrame(), goals), ""]
    return out


# -- the seed's figures and text summaries ------------------------------------------------------

def model_order(names) -> list[str]:
    """Shared models in their size order (opt_125m ... llama2_70b), others after by name."""
    known = ("opt_125m", "llama2_7b", "llama2_13b", "llama2_70b")
    return sorted(set(names), key=lambda n: (known.index(n) if n in known else len(known), n))


def _boxes(ax, ratios: dict[str, np.ndarray]) -> None:
    ax.boxplot(list(ratios.values()), tick_labels=list(ratios))
    ax.tick_params(axis="x", labelrotation=30)


def _ratio_vs_M(ax, Ms: np.ndarray, ratios: dict[str, np.ndarray]) -> None:
    """Mean ratio against the verifier count M, one line per method, integer M ticks."""
    xs = sorted(set(np.asarray(Ms).tolist()))
    for m, x in ratios.items():
        x = np.asarray(x, dtype=np.float64)
        ax.plot(xs, [x[Ms == k].mean() for k in xs], marker="o", ms=3, label=m)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _png(png, outdir, name: str) -> tuple[Path, str]:
    """(folder, file stem) of a figure: `png` (plot --output) or outdir/name.png."""
    return (Path(png).parent, Path(png).stem) if png else (Path(outdir), name)


def _combined_figure(per_model: dict[str, dict], outdir, name: str) -> Path:
    models = model_order(per_model)
    fig, axes = new_figure(1, len(models), size=(3.8 * len(models), 3.8), sharey=True)
    axes = np.atleast_1d(axes).ravel()
    for ax, model in zip(axes, models, strict=True):
        _boxes(ax, per_model[model])
        ax.set_title(model + (" (65B shapes)" if model == "llama2_70b" else ""))
    axes[0].set_ylabel("AlphaPrun ratio")
    return save_figure(fig, outdir, name)


def comparison_text(name: str, ratios: dict[str, np.ndarray], solver: str = "?") -> str:
    n = max((x.size for x in ratios.values()), default=0)
    lines = [f"AlphaPrun ratio by value method: {name} ({n} cases, solver {solver})", "",
             f"{'method':<10} {'n':>5} {'mean':>8} {'median':>8} {'std':>8} {'min':>8} "
             f"{'max':>8}"]
    for m, x in ratios.items():
        lines.append(f"{m:<10} {x.size:>5d} {x.mean():>8.4f} {np.median(x):>8.4f} "
                     f"{x.std(ddof=1) if x.size > 1 else 0.0:>8.4f} {x.min():>8.4f} "
                     f"{x.max():>8.4f}")
    return "\n".join(lines) + "\n"


def combined_text(per_model: dict[str, dict]) -> str:
    models = model_order(per_model)
    methods = list(dict.fromkeys(m for d in models for m in per_model[d]))
    lines = ["Mean AlphaPrun ratio by model and value method", "",
             f"{'model':<12}" + "".join(f" {m:>10}" for m in methods)]
    for d in models:
        r = per_model[d]
        lines.append(f"{d:<12}" + "".join(
            f" {r[m].mean():>10.4f}" if m in r else f" {'-':>10}" for m in methods))
    return "\n".join(lines) + "\n"


def plot_comparison(name: str, ratios: dict[str, np.ndarray], outdir=None, *,
                    solver: str = "?", png=None) -> list[Path]:
    """`{name}_comparison.png` and `.txt` under outdir (or `png` and its .txt): ratio by method."""
    folder, stem = _png(png, outdir, f"{name}_comparison")
    fig, ax = new_figure(size=(5.5, 3.8))
    _boxes(ax, ratios)
    n = max((np.size(x) for x in ratios.values()), default=0)
    ax.set(ylabel="AlphaPrun ratio", title=f"{name}: AlphaPrun ratio by method ({n} cases)")
    path = save_figure(fig, folder, stem)
    txt = path.with_suffix(".txt")
    txt.write_text(comparison_text(name, ratios, solver))
    return [path, txt]


def plot_combined(per_model: dict[str, dict], outdir=None, *, png=None) -> list[Path]:
    """`combined_comparison.png` and `.txt` (or `png` and its .txt): every model side by side."""
    folder, stem = _png(png, outdir, "combined_comparison")
    path = _combined_figure(per_model, folder, stem)
    txt = path.with_suffix(".txt")
    txt.write_text(combined_text(per_model))
    return [path, txt]


def plot_scalability(per_model: dict[str, tuple], outdir=None, *, png=None) -> Path:
    """`scalability_plot.png` (or `png`): mean ratio vs M per method, one panel per model,
    from model -> (M per case, method -> ratio per case)."""
    folder, stem = _png(png, outdir, "scalability_plot")
    models = model_order(per_model)
    fig, axes = new_figure(1, len(models), size=(4.2 * len(models) + 1.4, 3.6))
    axes = np.atleast_1d(axes).ravel()
    for ax, model in zip(axes, models, strict=True):
        _ratio_vs_M(ax, *per_model[model])
        ax.set(title=model, xlabel="verifiers M", ylabel="mean AlphaPrun ratio")
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    return save_figure(fig, folder, stem)


def seed_figures(exp: dict[str, tuple], scal: dict[str, tuple], outdir, *,
                 combined: bool = True) -> list[Path]:
    """The seed's figures and summaries: `{model}_comparison` of each model of `exp` (model ->
    (method -> ratios, solver)), `combined_comparison` (`combined`, more than one model) and
    `scalability_plot` of `scal` (model -> (M per case, method -> ratios))."""
    paths = []
    for model, (ratios, solver) in exp.items():
        paths += plot_comparison(model, ratios, outdir, solver=solver)
    if combined and len(exp) > 1:
        paths += plot_combined({model: ratios for model, (ratios, _) in exp.items()}, outdir)
    if scal:
        paths.append(plot_scalability(scal, outdir))
    return paths


def _arrays(lists: dict[str, list]) -> dict[str, np.ndarray]:
    return {m: np.asarray(x, dtype=np.float64) for m, x in lists.items()}


def files_figures(records: list[dict], outdir) -> list[Path]:
    """seed_figures from `files` records (benchlab layer-selection run); the scalability case
    files' records give `scalability_plot`."""
    exp, scal = {}, {}
    for rec in sorted(records, key=lambda r: r["config"]["case"]["case_id"]):
        case, metrics = rec["config"]["case"], rec["metrics"]
        row = (scal if case["scalability"] else exp).setdefault(case["model"],
                                                               {"M": [], "ratios": {}})
        row["M"].append(case["M"])
        row["solver"] = case["solver"]
        for m in [m for m in VALUE_METHODS if f"ratio_{m}" in metrics]:
            row["ratios"].setdefault(m, []).append(metrics[f"ratio_{m}"])
    return seed_figures({model: (_arrays(exp[model]["ratios"]), exp[model]["solver"])
                         for model in model_order(exp)},
                        {model: (np.asarray(row["M"]), _arrays(row["ratios"]))
                         for model, row in scal.items()}, outdir)
