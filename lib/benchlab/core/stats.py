"""Statistics shared by the experiments; every function is cross-checked against scipy in tests."""

import numpy as np
from scipy import stats as sps


def describe(x) -> dict:
    """n, mean, std (ddof=1), median, IQR, min, max and coefficient of variation of a sample."""
    x = np.asarray(x, dtype=float)
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    return {"n": int(x.size), "mean": float(x.mean()), "std": std, "median": float(med),
            "iqr": float(q3 - q1), "min": float(x.min()), "max": float(x.max()), "cv": cv(x)}


def cv(x) -> float:
    """Coefficient of variation std/mean (population std, ddof=0); nan for a zero mean."""
    x = np.asarray(x, dtype=float)
    mean = x.mean()
    return float(x.std() / mean) if mean != 0 else float("nan")


def medians(times: dict) -> dict:
    """name -> median of its sample (for the dicts of core.timing.interleave)."""
    return {k: float(np.median(v)) for k, v in times.items()}


def paired_ratio(a, b) -> float:
    """Median over rounds of a_i / b_i. For timings taken back to back (core.timing.interleave)
    slow drifts of a shared machine cancel in each pair, as they do not in median(a) / median(b)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired_ratio: need two equal, non-empty samples, got {a.size}, {b.size}")
    return float(np.median(a / b))


def paired_ratio_ci(a, b, *, level: float = 0.95, n_resamples: int = 10_000,
                    seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of paired_ratio(a, b): the median over rounds of a_i / b_i,
    resampling the rounds (pairs stay together)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired_ratio_ci: need two equal, non-empty samples, got {a.size}, "
                         f"{b.size}")
    return bootstrap_ci(a / b, np.median, level=level, n_resamples=n_resamples, seed=seed)


def paired_ttest(a, b) -> tuple[float, float]:
    """Paired t statistic and two-sided p-value of a - b (scipy.stats.ttest_rel)."""
    res = sps.ttest_rel(np.asarray(a, float), np.asarray(b, float))
    return float(res.statistic), float(res.pvalue)


def cohens_d_paired(a, b) -> float:
    """Paired Cohen's d (d_z): mean of the differences over their std (ddof=1)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    sd = d.std(ddof=1)
    return float(d.mean() / sd) if sd > 0 else float("nan")


def bootstrap_ci(x, statistic=np.mean, *, level: float = 0.95, n_resamples: int = 10_000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of `statistic` over a 1-d sample."""
    x = np.asarray(x, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_resamples, x.size))
    resamples = x[idx]
    try:  # numpy reductions (mean, median, ...) take the axis: one vectorized call
        values = statistic(resamples, axis=1)
    except TypeError:
        values = np.apply_along_axis(statistic, 1, resamples)
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


# --- Verdicts at the unit of independence ---------------------------------------------------
# A study compares a contender with a baseline on paired observations. Observations that share a
# unit (tokens of one sequence, steps of one seed, perturbations of one original case, calls of
# one timing round) are not independent: they are first reduced to one value per unit, and the
# interval, the test and the verdict are computed over units. A verdict word is read from the
# interval and the family-adjusted p, never from a point estimate; with fewer than MIN_UNITS
# units it is "not shown".

MIN_UNITS = 5
ALPHA = 0.05
NOT_SHOWN = "not shown"
POSITIVE = ("better", "faster", "met", "smaller", "beats")  # the contender's side of `null`
NEGATIVE = ("worse", "slower", "missed", "larger", "loses")
VERDICT_COLUMNS = ("n_units", "estimate", "ci_lo", "ci_hi", "p", "p_holm", "null", "better",
                   "verdict")


def unit_values(x, units=None) -> np.ndarray:
    """One value per unit: the mean of the observations of each unit (in sorted unit order), or
    `x` itself when every observation is its own unit."""
    x = np.asarray(x, dtype=float).ravel()
    if units is None:
        return x
    units = np.asarray(units).ravel()
    if units.shape != x.shape:
        raise ValueError(f"unit_values: {x.size} observations but {units.size} unit labels")
    ids, inverse = np.unique(units, return_inverse=True)
    sums = np.bincount(inverse, weights=x, minlength=ids.size)
    return sums / np.bincount(inverse, minlength=ids.size)


def paired_units(a, b, units=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit values of two paired samples (the same observations, the same units)."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired: need two equal, non-empty samples, got {a.size}, {b.size}")
    return unit_values(a, units), unit_values(b, units)


def compare_paired(a, b, *, units=None, kind: str = "diff", test: str = "t",
                   level: float = 0.95, n_resamples: int = 10_000, seed: int = 0) -> dict:
    """Contender `a` against baseline `b`, paired, over units of independence.

    kind "diff": estimate = mean over units of a - b, null 0, test on the differences
    ("t": scipy.stats.ttest_rel, "wilcoxon": scipy.stats.wilcoxon).
    kind "ratio": estimate = median over units of a / b (timings), null 1, test on log(a / b).
    The interval is the percentile bootstrap over units. Returns n_units, estimate, ci_lo, ci_hi,
    p (two-sided, unadjusted) and null."""
    ua, ub = paired_units(a, b, units)
    n = int(ua.size)
    if kind == "diff":
        d, stat, null = ua - ub, np.mean, 0.0
        tested = d
    elif kind == "ratio":
        if np.any(ua <= 0) or np.any(ub <= 0):
            raise ValueError("compare_paired: a ratio needs positive values")
        d, stat, null = ua / ub, np.median, 1.0
        tested = np.log(d)
    else:
        raise ValueError(f"compare_paired: kind must be 'diff' or 'ratio', got {kind!r}")
    est = float(stat(d))
    if n < 2:
        return {"n_units": n, "estimate": est, "ci_lo": float("nan"), "ci_hi": float("nan"),
                "p": float("nan"), "null": null}
    lo, hi = bootstrap_ci(d, stat, level=level, n_resamples=n_resamples, seed=seed)
    return {"n_units": n, "estimate": est, "ci_lo": lo, "ci_hi": hi,
            "p": paired_p(tested, test), "null": null}


def paired_p(d, test: str = "t") -> float:
    """Two-sided p of a paired test on the per-unit differences `d`; nan when they are all equal
    (no variance: nothing to test, so no verdict rests on it)."""
    d = np.asarray(d, float)
    if d.size < 2 or np.all(d == d[0]):
        return float("nan")
    if test == "t":
        return float(sps.ttest_1samp(d, 0.0).pvalue)
    if test == "wilcoxon":
        return float(sps.wilcoxon(d).pvalue)
    raise ValueError(f"paired_p: test must be 't' or 'wilcoxon', got {test!r}")


def adjust(pvalues, method: str = "holm") -> np.ndarray:
    """Family-adjusted p-values (statsmodels multipletests: "holm" or "fdr_bh"); nan stays nan and
    does not count as a test of the family."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method=method)[1]
    return out


def verdict(ci_lo: float, ci_hi: float, p_adj: float | None, n_units: int, *, null: float,
            better: str = "above", words: tuple[str, str] = ("better", "worse"),
            alpha: float = ALPHA) -> str:
    """The verdict word of one comparison: words[0] when the whole interval lies on the
    contender's side of `null` (better="above" or "below") and the adjusted p is below alpha,
    words[1] when it lies wholly on the other side, "not shown" otherwise and always with fewer
    than MIN_UNITS units. A goal is a comparison without a test: pass p_adj=None and the goal as
    `null` (words ("met", "missed"))."""
    if better not in ("above", "below"):
        raise ValueError(f"verdict: better must be 'above' or 'below', got {better!r}")
    if n_units < MIN_UNITS or not (np.isfinite(ci_lo) and np.isfinite(ci_hi)):
        return NOT_SHOWN
    if p_adj is not None and not (np.isfinite(p_adj) and p_adj < alpha):
        return NOT_SHOWN
    above, below = ci_lo > null, ci_hi < null
    if (above and better == "above") or (below and better == "below"):
        return words[0]
    if above or below:
        return words[1]
    return NOT_SHOWN


def family(rows: list[dict], *, better: str = "above", words: tuple[str, str] = ("better", "worse"),
           method: str = "holm", alpha: float = ALPHA) -> list[dict]:
    """Rows of compare_paired (one family: the tests a verdict rests on) with p_holm (the adjusted
    p; `method` may be "fdr_bh"), better and verdict added, in VERDICT_COLUMNS order first."""
    p_adj = adjust([r["p"] for r in rows], method)
    out = []
    for r, p in zip(rows, p_adj, strict=True):
        row = {**r, "p_holm": float(p), "better": better}
        row["verdict"] = verdict(r["ci_lo"], r["ci_hi"], float(p), r["n_units"], null=r["null"],
                                 better=better, words=words, alpha=alpha)
        out.append({**{k: row[k] for k in VERDICT_COLUMNS}, **row})
    return out


def check_verdict(row: dict, alpha: float = ALPHA) -> str | None:
    """Why a table row's verdict contradicts its own columns (VERDICT_COLUMNS; p_holm empty for a
    goal), or None when it follows from them. The claims check of the published reports."""
    word = str(row["verdict"]).strip()
    n = int(float(row["n_units"]))
    lo, hi, null = float(row["ci_lo"]), float(row["ci_hi"]), float(row["null"])
    p = row.get("p_holm")
    p = None if p in (None, "") else float(p)
    p = None if p is None or np.isnan(p) else p  # a goal: no test, read from the interval
    if word in POSITIVE:
        words = (word, NEGATIVE[POSITIVE.index(word)])
    elif word in NEGATIVE:
        words = (POSITIVE[NEGATIVE.index(word)], word)
    elif word == NOT_SHOWN:
        words = ("better", "worse")
    else:
        return f"unknown verdict word {word!r}"
    expected = verdict(lo, hi, p, n, null=null, better=str(row["better"]), words=words, alpha=alpha)
    if expected != word:
        return (f"verdict {word!r} but n_units={n}, interval [{lo:.4g}, {hi:.4g}] against "
                f"{null:g}, p_holm={p} give {expected!r}")
    return None
