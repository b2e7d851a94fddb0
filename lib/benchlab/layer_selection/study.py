"""The layer-selection studies (issues 40, 41), from records alone: both problem definitions,
the upstream shortfall split into its two causes, paired tests between value methods, and the
exact solver's speed goals (NOTES says how; report.py writes them).

Units of independence: the 130 experiment cases are 13 original budget cases x 10 perturbations
(the solve records' `original_case`), so every test and interval is over original cases (each
original's perturbations averaged: core.stats.unit_values); timings are over rounds.
"""

import itertools

import numpy as np
import pandas as pd

from ..core import stats

# solver -> the problem it solves exactly: `ordered` is upstream's DP with the missing "verifier
# unused" transition added, the optimum when verifier k's interval must lie left of k+1's
DEFINITIONS = {"exact": "any order", "ordered": "fixed order"}
PROXIES = ("random", "norm_1", "norm_2", "norm_inf")  # alphaprun is the objective itself
SPEED_GOAL = 1.0  # exact time / upstream time
M96_GOAL_MS = 50.0  # exact solve of an M = 96 scalability case
COLUMNS = list(stats.VERDICT_COLUMNS)

NOTES = """\
Problem definitions: "any order" (verifiers take their intervals in any order along the layers:
the `exact` solver) and "fixed order" (verifier k's interval lies left of verifier k+1's, as
upstream assumes; an unused verifier allowed: the `ordered` solver, exact for that problem). The
seed never fixes which one the paper means, so both are reported. Every value method's selection
is scored by its AlphaPrun benefit; AlphaPrun's own values *are* that benefit, so under either
definition its selection is the optimum by construction (ratio_to_best = 1, `to_best` = 1): it
is never tested against the proxies, which are tested against each other.

The upstream DP falls short of the any-order optimum for two reasons, split per instance in its
own objective (relative to the exact optimum): the *order effect* (exact - ordered: the fixed
verifier order, a modelling choice) and the *bug* (ordered - upstream: the missing "verifier
unused" transition, a plain error). Tests (`split_tests`, `method_tests`) are paired Wilcoxon
signed-rank tests over original cases (13 at full scale; each original's perturbations
averaged), estimate = mean difference with a 95% bootstrap interval over original cases, Holm
over each table's family; with fewer than 5 original cases the verdict is "not shown".
"""


def original_units(frame: pd.DataFrame) -> pd.Series:
    return frame["original_case"].astype(int)


def _by_solver(solve: pd.DataFrame, value: str) -> pd.DataFrame:
    """model, method, case_id, original_case -> one column of `value` per solver."""
    return solve.pivot_table(index=["case.model", "case.method", "case.case_id",
                                     "original_case"], columns="case.solver", values=value,
                             aggfunc="first").reset_index()


def definitions_table(solve: pd.DataFrame) -> pd.DataFrame:
    """Each model x definition x method: mean AlphaPrun ratio and benefit over the definition's
    own best (alphaprun's under the same solver and case), ranked within model and definition."""
    wide = _by_solver(solve, "benefit")
    rows = []
    for solver, name in DEFINITIONS.items():
        if solver not in wide:
            continue
        best = wide[wide["case.method"] == "alphaprun"].set_index(
            ["case.model", "case.case_id"])[solver]
        part = solve[solve["case.solver"] == solver]
        for (model, method), g in part.groupby(["case.model", "case.method"], sort=True):
            ref = best.reindex(list(zip(g["case.model"], g["case.case_id"], strict=True)))
            ref = ref.to_numpy()
            to_best = np.divide(g["benefit"].to_numpy(), ref, out=np.full(ref.size, np.nan),
                                where=ref > 0)  # nothing to select: no ratio
            rows.append({"model": model, "definition": name, "solver": solver, "method": method,
                         "cases": len(g), "originals": g["original_case"].nunique(),
                         "ratio_mean": g["ratio"].mean(), "to_best_mean": np.nanmean(to_best)})
    out = pd.DataFrame(rows)
    if len(out):
        out["rank"] = out.groupby(["model", "definition"])["ratio_mean"].rank(
            ascending=False, method="min").astype(int)
    return out


def shortfall_split(solve: pd.DataFrame) -> pd.DataFrame:
    """Per instance (model, case, method): upstream's gap to the exact optimum, split into the
    order effect (exact - ordered) and the bug (ordered - upstream), over the exact optimum."""
    wide = _by_solver(solve, "objective")
    if not {"exact", "ordered", "upstream"} <= set(wide):
        return pd.DataFrame()
    scale = wide["exact"].abs().where(wide["exact"] != 0, 1.0)
    return wide.assign(total=(wide["exact"] - wide["upstream"]) / scale,
                       order=(wide["exact"] - wide["ordered"]) / scale,
                       bug=(wide["ordered"] - wide["upstream"]) / scale)


def split_summary(split: pd.DataFrame) -> pd.DataFrame:
    g = split.groupby(["case.model", "case.method"], sort=True)
    out = g.agg(instances=("total", "size"), gap_mean=("total", "mean"),
                order_mean=("order", "mean"), bug_mean=("bug", "mean"),
                order_short=("order", lambda x: int((x > 1e-9).sum())),
                bug_short=("bug", lambda x: int((x > 1e-9).sum()))).reset_index()
    out["order_share"] = out["order_mean"] / out["gap_mean"].where(out["gap_mean"] > 0)
    return out.rename(columns={"case.model": "model", "case.method": "method"})


def split_tests(split: pd.DataFrame) -> pd.DataFrame:
    """Per model (methods pooled within each original case): is the bug's share of upstream's
    gap smaller than the order effect's? estimate = bug - order effect; Holm over the models."""
    rows = []
    for model, g in split.groupby("case.model", sort=True):
        r = stats.compare_paired(g["bug"], g["order"], units=original_units(g), test="wilcoxon")
        rows.append({"model": model, "contrast": "bug - order effect", **r})
    return _family(rows, better="below", words=("smaller", "larger"))


def method_tests(solve: pd.DataFrame) -> pd.DataFrame:
    """Per definition, model and pair of proxies (a, b): ratio(a) - ratio(b); one Holm family."""
    wide = solve.pivot_table(index=["case.model", "case.solver", "case.case_id", "original_case"],
                             columns="case.method", values="ratio", aggfunc="first").reset_index()
    rows = []
    for (model, solver), g in wide.groupby(["case.model", "case.solver"], sort=True):
        if solver not in DEFINITIONS:
            continue
        for a, b in itertools.combinations([m for m in PROXIES if m in g], 2):
            ok = g[[a, b]].notna().all(axis=1)
            r = stats.compare_paired(g.loc[ok, a], g.loc[ok, b], units=original_units(g[ok]),
                                     test="wilcoxon")
            rows.append({"model": model, "definition": DEFINITIONS[solver], "a": a, "b": b,
                         "mean_a": g.loc[ok, a].mean(), "mean_b": g.loc[ok, b].mean(), **r})
    return _family(rows, better="above", words=("better", "worse"))


def _family(rows: list[dict], better: str, words: tuple[str, str]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame()
    out = pd.DataFrame(stats.family(rows, better=better, words=words))
    lead = [c for c in out.columns if c not in COLUMNS]
    return out[lead + COLUMNS]


def _goal_row(estimate, lo, hi, n, goal) -> dict:
    """A goal's verdict columns: no test (p, p_holm empty), null = the goal, met when the whole
    interval lies below it."""
    return {"n_units": n, "estimate": estimate, "ci_lo": lo, "ci_hi": hi, "p": "", "p_holm": "",
            "null": goal, "better": "below",
            "verdict": stats.verdict(lo, hi, None, n, null=goal, better="below",
                                     words=("met", "missed"))}


def speed_goals(upstream: pd.DataFrame, scal: pd.DataFrame) -> pd.DataFrame:
    """Issue 41's goals: exact no slower than the upstream DP (median time ratio over paired
    rounds) on every model; every M = 96 scalability case solved exactly in <= 50 ms."""
    rows = []
    for _, r in upstream.iterrows():
        if not isinstance(r.get("exact_rounds_s"), list):
            continue
        c = stats.compare_paired(r["exact_rounds_s"], r["upstream_rounds_s"], kind="ratio")
        rows.append({"goal": "exact / upstream time <= 1", "model": r["case.model"],
                     "case": f"{int(r['instances'])} instances",
                     **_goal_row(c["estimate"], c["ci_lo"], c["ci_hi"], c["n_units"],
                                 SPEED_GOAL)})
    m96 = scal[(scal["case.solver"] == "exact") & (scal["case.M"] == 96)] if len(scal) else scal
    for _, r in m96.iterrows():
        if not isinstance(r.get("rounds_s"), list):
            continue
        ms = 1e3 * np.asarray(r["rounds_s"], dtype=float)
        lo, hi = stats.bootstrap_ci(ms, np.median) if ms.size >= 2 else (np.nan, np.nan)
        rows.append({"goal": "exact M=96 solve <= 50 ms", "model": r["case.model"],
                     "case": f"case {int(r['case.case_id'])}",
                     **_goal_row(float(np.median(ms)), lo, hi, ms.size, M96_GOAL_MS)})
    return pd.DataFrame(rows)


def lines(defs, split_t, method_t, goals) -> list[str]:
    """The README's sentences, each read from a table row."""
    out = []
    for _, r in split_t.iterrows():
        out.append(f"- {r['model']}: bug - order effect = {r['estimate']:.4f} of the optimum "
                   f"(95% CI [{r['ci_lo']:.4f}, {r['ci_hi']:.4f}], {r['n_units']} original "
                   f"cases, Wilcoxon p_holm = {r['p_holm']:.3g}); the bug's part against the "
                   f"order effect's: {r['verdict']}.")
    for (model, definition), g in defs.groupby(["model", "definition"], sort=True):
        order = " > ".join(g.sort_values("rank")["method"])
        out.append(f"- {model}, {definition}: mean AlphaPrun ratio ranks {order}.")
    shown = method_t[method_t["verdict"] != stats.NOT_SHOWN] if len(method_t) else method_t
    for _, r in shown.iterrows():
        out.append(f"- {r['model']}, {r['definition']}: {r['a']} is {r['verdict']} than "
                   f"{r['b']} (ratio difference {r['estimate']:.4f}, 95% CI [{r['ci_lo']:.4f}, "
                   f"{r['ci_hi']:.4f}], p_holm = {r['p_holm']:.3g}).")
    if len(method_t):
        out.append(f"- Method pairs with no verdict (interval across 0 or p_holm >= 0.05): "
                   f"{len(method_t) - len(shown)} of {len(method_t)}.")
    for _, r in goals.iterrows():
        out.append(f"- {r['goal']}, {r['model']} ({r['case']}): {r['estimate']:.3g} "
                   f"(95% CI [{r['ci_lo']:.3g}, {r['ci_hi']:.3g}], {r['n_units']} rounds): "
                   f"{r['verdict']}.")
    return out
