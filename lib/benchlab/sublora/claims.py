"""The SubLoRA report's claims, tested across seeds (the seed pairs the runs of a d).

    from benchlab.sublora.claims import mode_pairs; mode_pairs(runs, 1000)

Claims per d, one sentence each in claims.md with its p ("not shown at this scale" when
p >= ALPHA or n < 2): trained vs w = 0 (paired t-test; seeds >= GOAL below); mode vs mode (paired
t-test, Holm over the pairs of that d); learned gates vs 0.5, the init (one-sample t-test per
group, and pooled per run); Pareto dominance on (KL, raw bpd) (both one-sided paired t-tests,
intersection-union p = the larger); the B share: gain over w = 0 against r = d_B / d over the
fixed runs (linregress slope). LoRA's B starts at zero, so at w = 0 the A side gets no gradient
and the update BA lives in the span of B's r d coordinates: an A-heavy split starves it.
"""

from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..core.report import flatten, write_table
from ..core.stats import adjust
from .verdicts import GOAL, REFERENCES, verdict_table, write_verdicts
from .verdicts import lines as verdict_lines

ALPHA = 0.05
NOT_SHOWN = "not shown at this scale"
W0_LABEL = "w=0 (untrained)"  # the w = 0 row's label (report.mode_label)


def paired(runs: pd.DataFrame, d: int, a: str, b: str, metric: str) -> tuple[np.ndarray, ...]:
    """Values of `metric` for labels a and b at d, over the seeds both have (seed order)."""
    sub = runs[runs["d"] == d]
    x = sub[sub["label"] == a].set_index("seed")[metric]
    y = sub[sub["label"] == b].set_index("seed")[metric]
    seeds = sorted(set(x.index) & set(y.index), key=str)
    return x[seeds].to_numpy(float), y[seeds].to_numpy(float)


def ttest_rel(x, y, alternative: str = "two-sided") -> float:
    """p of scipy's paired t-test; nan with fewer than 2 pairs or no spread in the differences."""
    diff = np.asarray(x, float) - np.asarray(y, float)
    if diff.size < 2 or np.ptp(diff) == 0:
        return float("nan")
    return float(stats.ttest_rel(x, y, alternative=alternative).pvalue)


def _p(p: float) -> str:
    return "p not computable (n < 2 or no spread)" if not np.isfinite(p) else f"p = {p:.3g}"


def _verdict(p: float, shown: str = "shown") -> str:
    return shown if np.isfinite(p) and p < ALPHA else NOT_SHOWN


def _vs_half(x: np.ndarray) -> float:
    """p of the one-sample t-test of x against 0.5 (the gates' init); nan without spread."""
    return float(stats.ttest_1samp(x, 0.5).pvalue) if x.size > 1 and np.ptp(x) > 0 else np.nan


def w0_claims(runs: pd.DataFrame, d: int) -> list[str]:
    sub = runs[runs["d"] == d]
    if not (sub["mode"] == "w0").any():
        return [f"d={d}: no w = 0 run, so no trained run can be compared with the prior."]
    out = []
    for label in sorted(set(sub[~sub["mode"].isin(REFERENCES)]["label"]), key=_key):
        w0, run = paired(runs, d, W0_LABEL, label, "bound_value")
        gap = w0 - run
        if not gap.size:
            continue
        p = ttest_rel(w0, run)
        side = "below" if gap.mean() >= 0 else "ABOVE"
        out.append(f"d={d}, {label}: the bound is {abs(gap.mean()):.3f} bits/token {side} the "
                   f"w = 0 bound (w0 - run, min over {gap.size} seeds {gap.min():.3f}; "
                   f"paired t-test {_p(p)}: {_verdict(p)}); {int((gap >= GOAL).sum())} of "
                   f"{gap.size} seeds "
                   f">= {GOAL:g} bit below (the goal's verdict: verdicts.csv).")
    return out


RANK = {"w=0": -3, "unigram": -2, "bigram": -1, "uniform": 0, "grouped": 0.5, "fixed": 1,
        "learned": 2}


def _key(label: str):
    """Sort key of a mode label: references (w = 0, unigram, bigram) first, then the modes."""
    return (RANK.get(label.split()[0], 3), label)


def mode_pairs(runs: pd.DataFrame, d: int) -> pd.DataFrame:
    """Every pair of trained modes at d: mean bound difference a - b, n, p and Holm p."""
    labels = sorted(set(runs[(runs["d"] == d) & ~runs["mode"].isin(REFERENCES)]["label"]),
                    key=_key)
    rows = []
    for a, b in combinations(labels, 2):
        x, y = paired(runs, d, a, b, "bound_value")
        rows.append({"d": d, "a": a, "b": b, "n": x.size,
                     "diff": float((x - y).mean()) if x.size else np.nan, "p": ttest_rel(x, y)})
    frame = pd.DataFrame(rows, columns=["d", "a", "b", "n", "diff", "p"])
    frame["p_holm"] = adjust(frame["p"], "holm") if len(frame) else []
    return frame


def gate_tests(runs: pd.DataFrame, d: int | None = None) -> dict:
    """{'per_group': [(group, mean, p)], 'pooled': (mean, n, p)}; d None pools all d."""
    sub = runs[(runs["mode"] == "learned") & runs["gates"].notna()]
    if d is not None:
        sub = sub[sub["d"] == d]
    if sub.empty:
        return {}
    mat = np.array(list(sub["gates"]), dtype=float)   # (runs, groups)
    per = [(j, float(col.mean()), _vs_half(col)) for j, col in enumerate(mat.T)] if d else []
    pooled = mat.mean(axis=1)
    return {"per_group": per, "pooled": (float(pooled.mean()), int(pooled.size), _vs_half(pooled))}


def dominance(runs: pd.DataFrame, d: int) -> list[dict]:
    """Pairs where A's mean KL and mean raw bpd are both lower than B's, with the IUT p (w = 0
    and the modes; the count models have one run, nothing to pair)."""
    sub = runs[(runs["d"] == d) & ~runs["mode"].isin(("unigram", "bigram"))]
    labels = sorted(set(sub["label"]), key=_key)
    means = sub.groupby("label")[["kl_divergence", "raw_bpd"]].mean()
    out = []
    for a in labels:
        for b in labels:
            if a == b or not (means.loc[a] < means.loc[b]).all():
                continue
            ps = [ttest_rel(*paired(runs, d, a, b, m), alternative="less")
                  for m in ("kl_divergence", "raw_bpd")]
            out.append({"a": a, "b": b, "p_kl": ps[0], "p_bpd": ps[1], "p": max(ps)})
    return out


def share_trend(runs: pd.DataFrame, d: int) -> dict | None:
    """Fixed runs at d: slope of (w0 bound - run bound) on r, its p and n; None under 3 runs or
    fewer than 2 distinct r."""
    sub = runs[(runs["d"] == d) & (runs["mode"] == "fixed")]
    w0 = runs[(runs["d"] == d) & (runs["mode"] == "w0")].set_index("seed")["bound_value"]
    sub = sub[sub["seed"].isin(w0.index)]
    if len(sub) < 3 or sub["ratio"].nunique() < 2:
        return None
    gap = w0[sub["seed"]].to_numpy(float) - sub["bound_value"].to_numpy(float)
    fit = stats.linregress(sub["ratio"].to_numpy(float), gap)
    return {"slope": float(fit.slope), "p": float(fit.pvalue), "n": len(sub),
            "gap_at": {float(r): float(gap[sub["ratio"].to_numpy() == r].mean())
                       for r in sorted(set(sub["ratio"]))}}


def write_claims(runs: pd.DataFrame, summ: pd.DataFrame, outdir, *, title: str = "",
                 random_bpd: float | None = None, tests=()) -> Path:
    """claims.md (and verdicts.{md,csv,tex}): the verdict rows, then the exploratory claims."""
    table = verdict_table(runs, tests)
    write_verdicts(table, outdir)
    lines = ["# SubLoRA: tested claims", "", f"Study: {title or 'unlabelled'}.", "",
             "Pre-registered family (sublora.PREREGISTERED, written before the 8-seed runs; "
             "paired by seed, t-test, bootstrap CI over seeds, Holm over the family) and the "
             "goals against the references (verdicts.csv holds every row with its columns):", "",
             *verdict_lines(table), "",
             "Exploratory (not pre-registered): "
             f"tests at level {ALPHA} across the seeds of each d (paired by seed); "
             f"{NOT_SHOWN!r} where p >= {ALPHA}.", ""]
    trained = runs[~runs["mode"].isin(REFERENCES)]
    if random_bpd is not None and not trained.empty:
        nv = int((trained["bound_value"] < random_bpd).sum())
        lines.append(f"- Non-vacuous: {nv} of {len(trained)} trained runs bound below "
                     f"log2 V = {random_bpd:.3f} bits/token (w = 0 runs: "
                     f"{int((runs[runs['mode'] == 'w0']['bound_value'] < random_bpd).sum())} of "
                     f"{int((runs['mode'] == 'w0').sum())}).")
        gaps = np.concatenate([np.subtract(*paired(runs, d, W0_LABEL, lab, "bound_value"))
                               for d in sorted(set(runs["d"]))
                               for lab in set(trained[trained["d"] == d]["label"])]
                              or [np.array([])])
        if gaps.size:
            lines.append(f"- Goal (>= {GOAL:g} bit/token below the w = 0 bound of the same d and "
                         f"seed): reached by {int((gaps >= GOAL).sum())} of {gaps.size} trained "
                         f"runs (gaps {gaps.min():.3f} to {gaps.max():.3f} bits/token).")
        lines.append("")
    for d in sorted(set(runs["d"])):
        lines += [f"## d = {d}", "", "Trained vs w = 0 (the untrained prior):", ""]
        lines += [f"- {s}" for s in w0_claims(runs, d)]
        pairs = mode_pairs(runs, d)
        lines += ["", "Mode vs mode (bound a - b, negative: a bounds lower; paired t-test, Holm "
                  "over the pairs of this d):", ""]
        for _, r in pairs.iterrows():
            lines.append(f"- {r['a']} vs {r['b']}: mean difference {r['diff']:+.3f} bits/token "
                         f"over {r['n']} seeds, {_p(r['p'])}, Holm p = {r['p_holm']:.3g}: "
                         f"{_verdict(r['p_holm'], 'a difference is shown')}.")
        g = gate_tests(runs, d)
        if g:
            lines += ["", "Learned gates gamma (share of B) vs 0.5, the init:", ""]
            for j, mean, p in g["per_group"]:
                lines.append(f"- group {j}: mean gamma {mean:.4f}, one-sample t-test {_p(p)}: "
                             f"{_verdict(p, 'differs from 0.5')}.")
            mean, n, p = g["pooled"]
            lines.append(f"- pooled (per-run mean over groups, n = {n}): mean gamma {mean:.4f}, "
                         f"{_p(p)}: {_verdict(p, 'differs from 0.5')}.")
        trend = share_trend(runs, d)
        if trend:
            at = ", ".join(f"r={r:g}: {g:.3f}" for r, g in trend["gap_at"].items())
            lines += ["", "The B share (fixed allocation; LoRA's B starts at zero, so the A side "
                      "learns only through B):", "",
                      f"- gain over w = 0 against r = d_B / d: slope {trend['slope']:+.3f} "
                      f"bits/token per unit r over {trend['n']} runs (mean gain {at}; "
                      f"linear regression {_p(trend['p'])}): "
                      f"{_verdict(trend['p'], 'a trend is shown')}."]
        dom = dominance(runs, d)
        lines += ["", "Pareto dominance on (KL, raw bpd), lower is better (pairs where the means "
                  "suggest it):", ""]
        if not dom:
            lines.append("- no mode's means are lower on both axes than another's.")
        for r in dom:
            lines.append(f"- {r['a']} dominates {r['b']}: KL {_p(r['p_kl'])}, raw bpd "
                         f"{_p(r['p_bpd'])} (one-sided), intersection-union {_p(r['p'])}: "
                         f"{_verdict(r['p'])}.")
        lines.append("")
    g = gate_tests(runs)
    if g and len(set(runs["d"])) > 1:
        mean, n, p = g["pooled"]
        lines.append(f"Gates pooled over all d (n = {n} runs): mean gamma {mean:.4f}, {_p(p)}: "
                     f"{_verdict(p, 'differs from 0.5')}.")
        lines.append("")
    path = Path(outdir) / "claims.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


TIMING = {  # case.kind -> (table name, columns), from bench/test_sublora.py's other benchmarks
    "step": ("step_time", ["case.d", "case.projector", "subspace_step_ms", "lora_step_ms",
                           "step_ratio", "ratio_goal"]),
    "bound": ("bound_eval_time", ["case.d", "case.mode", "s", "doc_tokens", "bound_eval_seconds",
                                  "train_seconds", "bound_over_train", "eval_bound_value"]),
}


def timing_tables(records: list[dict], outdir) -> None:
    """step_time.* and bound_eval_time.*, when the records hold those benchmarks."""
    rows = [{"id": r.get("case"), **flatten(r.get("config") or {}), **(r.get("metrics") or {})}
            for r in records]
    for kind, (name, cols) in TIMING.items():
        sub = [r for r in rows if r.get("case.kind") == kind]
        if sub:
            frame = pd.DataFrame([{c.removeprefix("case."): r.get(c) for c in cols} for r in sub])
            write_table(frame.sort_values(list(frame.columns[:2]), kind="stable"), outdir, name)
