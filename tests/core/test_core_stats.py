"""benchlab.core.stats against scipy and numpy (and core.timing.interleave, which feeds it)."""

import statistics

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from benchlab.core import interleave, measure_side_by_side, stats
from benchlab.core.stats import paired_ratio

samples = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=3, max_size=40)


@given(samples)
def test_describe_matches_numpy(xs):
    x = np.array(xs)
    d = stats.describe(x)
    assert d["n"] == len(xs)
    assert d["mean"] == pytest.approx(np.mean(x), abs=1e-9)
    assert d["std"] == pytest.approx(np.std(x, ddof=1), abs=1e-9)
    assert d["median"] == pytest.approx(np.median(x), abs=1e-9)
    assert d["iqr"] == pytest.approx(sps.iqr(x), abs=1e-9)


@given(samples.filter(lambda xs: abs(np.mean(xs)) > 1e-3))
def test_cv_matches_scipy_variation(xs):
    assert stats.cv(xs) == pytest.approx(sps.variation(xs), rel=1e-9, abs=1e-9)


def test_paired_ttest_and_cohens_d():
    rng = np.random.default_rng(0)
    a = rng.normal(1.0, 1.0, 30)
    b = a - rng.normal(0.3, 0.5, 30)
    t, p = stats.paired_ttest(a, b)
    ref = sps.ttest_rel(a, b)
    assert (t, p) == pytest.approx((ref.statistic, ref.pvalue))
    d = a - b
    assert stats.cohens_d_paired(a, b) == pytest.approx(d.mean() / d.std(ddof=1))
    # d_z and t are tied: t = d_z * sqrt(n)
    assert t == pytest.approx(stats.cohens_d_paired(a, b) * np.sqrt(len(a)))


def test_bootstrap_ci_close_to_scipy():
    x = np.random.default_rng(1).exponential(2.0, 200)
    lo, hi = stats.bootstrap_ci(x, n_resamples=4000, seed=3)
    ref = sps.bootstrap((x,), np.mean, n_resamples=4000, method="percentile", random_state=3)
    assert lo == pytest.approx(ref.confidence_interval.low, rel=0.05)
    assert hi == pytest.approx(ref.confidence_interval.high, rel=0.05)
    assert lo < x.mean() < hi


def test_paired_ratio_is_the_median_of_per_round_ratios():
    a, b = [2.0, 9.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]  # per round: 2, 3, 1.5, 1
    assert paired_ratio(a, b) == statistics.median([2.0, 3.0, 1.5, 1.0])
    assert paired_ratio(a, b) != statistics.median(a) / statistics.median(b)
    with pytest.raises(ValueError, match="equal"):
        paired_ratio([1.0], [1.0, 2.0])


def test_paired_ratio_ci_resamples_pairs_close_to_scipy():
    g = np.random.default_rng(4)
    drift = g.lognormal(0, 0.5, 60)  # a machine state shared by both timings of a round
    a, b = 1.3 * drift * g.lognormal(0, 0.02, 60), drift * g.lognormal(0, 0.02, 60)
    lo, hi = stats.paired_ratio_ci(a, b, n_resamples=4000, seed=2)
    ref = sps.bootstrap((a, b), lambda x, y: np.median(x / y), paired=True, n_resamples=4000,
                        method="percentile", random_state=2).confidence_interval
    assert lo == pytest.approx(ref.low, rel=0.01) and hi == pytest.approx(ref.high, rel=0.01)
    assert lo < paired_ratio(a, b) < hi and hi - lo < 0.05  # pairs kept: the drift cancels
    with pytest.raises(ValueError, match="equal"):
        stats.paired_ratio_ci([1.0, 2.0], [1.0])


def test_interleave_rotates_the_order_and_times_every_round():
    calls = []
    fns = {n: (lambda n=n: calls.append(n)) for n in "abc"}
    times = interleave(fns, warmup=1, rounds=3)
    assert calls[:3] == ["a", "b", "c"]  # warm-up
    assert calls[3:] == list("abc" "bca" "cab")  # each goes first once
    assert {n: len(t) for n, t in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(t >= 0 for ts in times.values() for t in ts)


class _Benchmark:
    """pytest-benchmark's pedantic call pattern: warm-up rounds, then timed rounds (or one call
    when disabled)."""

    def __init__(self, enabled=True):
        self.enabled = enabled

    def pedantic(self, fn, setup=None, rounds=1, warmup_rounds=0, iterations=1):
        for _ in range(warmup_rounds + rounds if self.enabled else 1):
            out = fn()
        return out


@pytest.mark.parametrize("enabled", [True, False])
def test_measure_side_by_side_rotates_and_drops_warmups(enabled):
    calls = []
    fns = {n: (lambda n=n: calls.append(n)) for n in "ab"}
    times = measure_side_by_side(_Benchmark(enabled), fns, warmup=1, rounds=4)
    if enabled:
        assert calls == list("ab" "ba" "ab" "ba" "ab")  # warm-up round, then 4 timed rounds
        assert {n: len(t) for n, t in times.items()} == {"a": 4, "b": 4}
    else:
        assert calls == ["a", "b"] and {n: len(t) for n, t in times.items()} == {"a": 1, "b": 1}
