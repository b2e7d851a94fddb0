"""The verdict layer of benchlab.core.stats against scipy.stats, statsmodels and pandas: values
are reduced to one per unit of independence, tested and adjusted over a family, and a verdict
word follows only from the interval and the adjusted p."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from benchlab.core import stats


def clustered(n_units=8, per_unit=64, shift=0.0, seed=0):
    """Token-like observations: a strong per-sequence effect shared by its tokens, small noise."""
    rng = np.random.default_rng(seed)
    units = np.repeat(np.arange(n_units), per_unit)
    seq = rng.normal(0, 1, n_units)[units]
    a = seq + shift + rng.normal(0, 0.1, units.size)
    b = rng.normal(0, 0.1, units.size)
    return a, b, units


def test_unit_values_are_the_per_unit_means_of_pandas():
    rng = np.random.default_rng(1)
    x, units = rng.normal(size=300), rng.choice(["s3", "s1", "s2", "s10"], 300)
    ref = pd.Series(x).groupby(units).mean()
    assert stats.unit_values(x, units) == pytest.approx(ref.to_numpy())
    assert stats.unit_values(x) is not None and stats.unit_values(x).size == 300
    with pytest.raises(ValueError, match="unit labels"):
        stats.unit_values(x, units[:-1])


@pytest.mark.parametrize("test, scipy_test", [("t", sps.ttest_rel), ("wilcoxon", sps.wilcoxon)])
def test_compare_paired_tests_the_units_as_scipy_does(test, scipy_test):
    a, b, units = clustered(n_units=12, shift=0.3)
    res = stats.compare_paired(a, b, units=units, test=test)
    ua = pd.Series(a).groupby(units).mean().to_numpy()
    ub = pd.Series(b).groupby(units).mean().to_numpy()
    assert res["n_units"] == 12
    assert res["estimate"] == pytest.approx(np.mean(ua - ub))
    assert res["p"] == pytest.approx(scipy_test(ua, ub).pvalue)
    assert res["null"] == 0.0
    ref = sps.bootstrap(((ua - ub),), np.mean, n_resamples=9999, method="percentile",
                        random_state=0).confidence_interval
    assert res["ci_lo"] == pytest.approx(ref.low, abs=0.05)
    assert res["ci_hi"] == pytest.approx(ref.high, abs=0.05)


def test_tokens_as_units_overstate_the_evidence():
    """The reason for units: 8 sequences of 64 tokens are 8 units, not 512."""
    a, b, units = clustered(n_units=8, shift=0.3, seed=3)
    by_token = stats.compare_paired(a, b)["p"]
    by_sequence = stats.compare_paired(a, b, units=units)["p"]
    assert by_token < 0.05 < by_sequence


def test_ratio_is_the_median_ratio_over_units_tested_on_logs():
    rng = np.random.default_rng(2)
    base = rng.uniform(1, 2, 15)
    new = base * rng.lognormal(0.1, 0.05, 15)
    res = stats.compare_paired(new, base, kind="ratio")
    assert res["estimate"] == pytest.approx(np.median(new / base))
    assert res["p"] == pytest.approx(sps.ttest_1samp(np.log(new / base), 0).pvalue)
    assert res["null"] == 1.0 and res["ci_lo"] > 1.0
    with pytest.raises(ValueError, match="positive"):
        stats.compare_paired(-new, base, kind="ratio")


@settings(max_examples=25)  # multipletests runs gc.collect() on every call
@given(st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), min_size=1, max_size=30),
       st.sampled_from(["holm", "fdr_bh"]))
def test_adjust_matches_statsmodels_and_keeps_nan_out_of_the_family(ps, method):
    p = np.array(ps)
    got = stats.adjust(p, method)
    ok = ~np.isnan(p)
    assert np.isnan(got[~ok]).all()
    if ok.any():
        assert got[ok] == pytest.approx(multipletests(p[ok], method=method)[1])


@given(st.floats(-10, 10), st.floats(0, 5), st.floats(0, 1), st.integers(0, 40),
       st.sampled_from(["above", "below"]))
def test_verdict_follows_the_interval_and_the_adjusted_p_only(lo, width, p, n, better):
    hi = lo + width
    word = stats.verdict(lo, hi, p, n, null=0.0, better=better)
    if n < stats.MIN_UNITS or p >= stats.ALPHA or lo <= 0 <= hi:
        assert word == stats.NOT_SHOWN
    elif (lo > 0) == (better == "above"):
        assert word == "better"
    else:
        assert word == "worse"


def test_a_goal_is_met_only_when_the_whole_interval_meets_it():
    goal = dict(null=1.0, better="below", words=("met", "missed"))
    assert stats.verdict(0.88, 1.035, None, 10, **goal) == stats.NOT_SHOWN  # the referee's case
    assert stats.verdict(0.88, 0.99, None, 10, **goal) == "met"
    assert stats.verdict(1.01, 1.2, None, 10, **goal) == "missed"
    assert stats.verdict(0.5, 0.6, None, 4, **goal) == stats.NOT_SHOWN


def test_family_adjusts_with_holm_and_every_row_passes_its_own_check():
    rows = [stats.compare_paired(*clustered(n_units=10, shift=s, seed=i)[:2],
                                 units=clustered(n_units=10)[2])
            for i, s in enumerate([0.0, 0.8, -0.8, 0.05])]
    fam = stats.family(rows, better="above")
    assert [r["p_holm"] for r in fam] == pytest.approx(
        multipletests([r["p"] for r in rows], method="holm")[1])
    assert list(fam[0])[:len(stats.VERDICT_COLUMNS)] == list(stats.VERDICT_COLUMNS)
    assert all(stats.check_verdict(r) is None for r in fam)
    assert {r["verdict"] for r in fam} <= {"better", "worse", stats.NOT_SHOWN}


def test_check_verdict_names_a_verdict_its_row_contradicts():
    row = {"n_units": 12, "estimate": 0.975, "ci_lo": 0.88, "ci_hi": 1.035, "p": "",
           "p_holm": "", "null": 1.0, "better": "below", "verdict": "met"}
    assert "give 'not shown'" in stats.check_verdict(row)
    assert stats.check_verdict({**row, "ci_hi": 0.99}) is None
    assert stats.check_verdict({**row, "n_units": 3, "ci_hi": 0.99}) is not None
    assert "unknown verdict" in stats.check_verdict({**row, "verdict": "great"})
