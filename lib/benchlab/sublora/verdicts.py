"""The SubLoRA verdicts, one table row each with core.stats.VERDICT_COLUMNS, at the seed level.

    from benchlab.sublora.verdicts import verdict_table; verdict_table(runs, tests)

Rows of `verdicts.{md,csv,tex}` (each verdict follows from its row, stats.check_verdict; a test
whose modes a scale does not run is a sentence in claims.md, not a row):
- test: the pre-registered family (Config.tests): per d, contender - baseline of the metric,
  paired by seed (stats.compare_paired: t-test, bootstrap CI over seeds), Holm over the test rows.
- goal (met/missed, no p), per trained mode and d, per seed: (w = 0 bound) - (run bound) >= GOAL;
  (the lower of the seed's w = 0 bound and the unigram bound) - (run bound) >= GOAL; and
  (unigram raw bpd) - (run raw bpd) >= 0.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core import stats
from ..core.report import write_table

FIXED_NAMES = {0.2: "fixed_aheavy", 0.5: "fixed_equal", 0.8: "fixed_bheavy"}  # the fork's


def mode_id(mode: str, ratio: float) -> str:
    """Folder/id name of a mode: uniform, ..., fixed_aheavy (r=0.2), ..., fixed0.3."""
    return FIXED_NAMES.get(float(ratio), f"fixed{ratio:g}") if mode == "fixed" else mode


@dataclass(frozen=True)
class Test:
    """One pre-registered paired comparison at the seed level: per seed, `metric` of the contender
    minus that of the baseline (modes by mode_id; family_rows), Holm over the family."""
    contender: str
    baseline: str
    metric: str = "bound_value"
    better: str = "below"        # the contender wins when the difference is below 0


# Pre-registered on 2026-12-07, before any 8-seed run, from the 3-seed scratch study committed in
# reports/sublora (d = 4000 and 6000): the best fixed split there is fixed_bheavy (r = 0.8), the
# lowest mean bound of the three fixed modes at both d. The family (Holm) is these four tests; a
# test whose modes a scale does not run has no units ("not shown") and no p.
PREREGISTERED = (
    Test("learned", "fixed_bheavy"),   # primary: adaptive A/B split vs the best fixed split
    Test("fixed_bheavy", "grouped"),   # an A/B split vs none, same per-group structure
    Test("learned", "grouped"),
    Test("grouped", "uniform"),        # per-group structure vs one projector over all layers
)

GOAL = 1.0   # bits/token below the w = 0 bound, and below the better of w = 0 and unigram
REFERENCES = ("w0", "unigram", "bigram")  # rows that are not trained SubLoRA modes
COLUMNS = ("kind", "d", "contender", "baseline", "metric", *stats.VERDICT_COLUMNS)


def mode_ids(runs: pd.DataFrame) -> pd.Series:
    """Each run's mode id (sublora.mode_id: fixed_bheavy, grouped, w0, unigram, ...)."""
    return pd.Series([mode_id(m, r if np.isfinite(r) else 0.5)
                      for m, r in zip(runs["mode"], runs["ratio"], strict=True)],
                     index=runs.index, dtype=object)


def _per_seed(runs: pd.DataFrame, d: int, mid: str, metric: str) -> pd.Series:
    sub = runs[(runs["d"] == d) & (mode_ids(runs) == mid)]
    return sub.groupby("seed")[metric].mean()


def _row(kind, d, contender, baseline, metric, a: pd.Series, b: pd.Series) -> dict:
    """compare_paired over the seeds both series hold (a - b); an empty pairing: no units."""
    seeds = sorted(set(a.index) & set(b.index), key=str)
    base = {"kind": kind, "d": int(d), "contender": contender, "baseline": baseline,
            "metric": metric}
    if not seeds:
        return {**base, "n_units": 0, "estimate": np.nan, "ci_lo": np.nan, "ci_hi": np.nan,
                "p": np.nan, "null": 0.0}
    res = stats.compare_paired(a[seeds].to_numpy(float), b[seeds].to_numpy(float),
                               units=np.asarray(seeds, dtype=str), kind="diff")
    return {**base, **res}


def family_rows(runs: pd.DataFrame, tests) -> list[dict]:
    """The pre-registered family at every d of `runs`, Holm over all of its rows."""
    rows, better = [], []
    for d in sorted(set(runs["d"])):
        for t in tests:
            rows.append(_row("test", d, t.contender, t.baseline, t.metric,
                             _per_seed(runs, d, t.contender, t.metric),
                             _per_seed(runs, d, t.baseline, t.metric)))
            better.append(t.better)
    p_holm = stats.adjust([r["p"] for r in rows], "holm") if rows else []
    for r, ph, side in zip(rows, p_holm, better, strict=True):
        r.update(p_holm=float(ph), better=side,
                 verdict=stats.verdict(r["ci_lo"], r["ci_hi"], float(ph), r["n_units"],
                                       null=r["null"], better=side))
    return rows


def _goal(row: dict, goal: float) -> dict:
    row.update(p=np.nan, p_holm=np.nan, null=goal, better="above",
               verdict=stats.verdict(row["ci_lo"], row["ci_hi"], None, row["n_units"],
                                     null=goal, better="above", words=("met", "missed")))
    return row


def goal_rows(runs: pd.DataFrame, goal: float = GOAL) -> list[dict]:
    """The goal rows of the module docstring."""
    ids = mode_ids(runs)
    rows = []
    for d in sorted(set(runs["d"])):
        here = runs["d"] == d
        w0 = _per_seed(runs, d, "w0", "bound_value")
        uni = runs[here & (ids == "unigram")]
        trained = list(dict.fromkeys(ids[here & ~runs["mode"].isin(REFERENCES)]))
        for mid in trained:
            run = _per_seed(runs, d, mid, "bound_value")
            rows.append(_goal(_row("goal", d, mid, "w0 bound", "bound_value", w0, run), goal))
            if uni.empty:
                continue
            ref = np.fmin(w0.reindex(run.index), float(uni["bound_value"].mean()))
            rows.append(_goal(_row("goal", d, mid, "min(w0, unigram) bound", "bound_value",
                                   ref.dropna(), run), goal))
            raw = _per_seed(runs, d, mid, "raw_bpd")
            ref = pd.Series(float(uni["raw_bpd"].mean()), index=raw.index)
            rows.append(_goal(_row("goal", d, mid, "unigram raw bpd", "raw_bpd", ref, raw), 0.0))
    return rows


def verdict_table(runs: pd.DataFrame, tests) -> pd.DataFrame:
    """Test rows (the family) then goal rows, COLUMNS first."""
    rows = family_rows(runs, tests) + goal_rows(runs)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def write_verdicts(table: pd.DataFrame, outdir) -> None:
    """verdicts.{md,csv,tex}: the rows with units; a goal's p and p_holm are empty, not "nan"
    (check_verdict reads that as "no test")."""
    shown = table[table["n_units"] > 0].copy()
    for col in ("p", "p_holm"):
        shown[col] = shown[col].astype(object).where(shown[col].notna(), "")
    write_table(shown, outdir, "verdicts")


def lines(table: pd.DataFrame) -> list[str]:
    """claims.md's sentences of the verdict table."""
    out = []
    for _, r in table.iterrows():
        ci = (f"[{r['ci_lo']:+.3f}, {r['ci_hi']:+.3f}]" if np.isfinite(r["ci_lo"])
              else "no interval")
        if r["n_units"] == 0:
            out.append(f"- d={r['d']}, {r['contender']} vs {r['baseline']}: not run at this "
                       "scale (no seed has both modes; no row in verdicts.csv).")
        elif r["kind"] == "test":
            out.append(f"- d={r['d']}, {r['contender']} vs {r['baseline']} ({r['metric']}, "
                       f"contender - baseline, {r['better']} 0 wins): {r['estimate']:+.3f} over "
                       f"{r['n_units']} seeds, 95% CI {ci}, p = {r['p']:.3g}, Holm p = "
                       f"{r['p_holm']:.3g}: {r['verdict']}.")
        else:
            out.append(f"- d={r['d']}, {r['contender']}: {r['baseline']} - run = "
                       f"{r['estimate']:+.3f} bits/token over {r['n_units']} seeds, 95% CI {ci},"
                       f" goal >= {r['null']:g}: {r['verdict']}.")
    return out
