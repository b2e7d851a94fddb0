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
    values = np.apply_along_axis(statistic, 1, x[idx])
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
