"""The studies of issues 40 and 41 (layer_selection.study): both problem definitions, the upstream
shortfall split, Wilcoxon tests over original cases with Holm, the speed goals; every verdict
row recomputed from its own columns (core.stats.check_verdict), the tests against scipy and
statsmodels."""

import csv
import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from benchlab.core import Timer, stats
from benchlab.layer_selection import CONFIGS, data, instances, solve, study, upstream_cases
from benchlab.layer_selection.measure import measure_upstream
from benchlab.layer_selection.report import report

needs_shared = pytest.mark.skipif(
    not (data.shared_dir() / "cases" / "experiment_cases.json").exists(),
    reason=f"shared layer-selection data not at {data.shared_dir()}")


def frame(n_orig=6, per=2, seed=0):
    """Solve records of one model as a records_frame would hold them: random instances through
    every solver and method (values: the method's own; benefit: summed significance)."""
    rng = np.random.default_rng(seed)
    rows = []
    for o in range(n_orig):
        for k in range(per):
            cid = o * per + k
            costs = rng.integers(1, 6, 12).astype(float)
            sig = rng.random(12)
            budgets = np.array([rng.integers(2, 12), rng.integers(1, 4), rng.integers(4, 15)],
                               dtype=float)
            vals = {"alphaprun": sig, "norm_1": sig + rng.normal(0, 0.2, 12).clip(-sig),
                    "norm_2": sig ** 2, "norm_inf": rng.random(12), "random": rng.random(12)}
            for method, v in vals.items():
                for solver in ("exact", "ordered", "upstream"):
                    sel = solve(costs, v, budgets, solver)
                    b = float(sig[sel.layers].sum()) if sel.layers else 0.0
                    rows.append({"case.model": "m", "case.method": method, "case.case_id": cid,
                                 "case.solver": solver, "original_case": 100 + o,
                                 "objective": sel.value, "benefit": b, "ratio": b / sig.sum()})
    return pd.DataFrame(rows)


def test_split_adds_up_and_alphaprun_is_its_own_best():
    f = frame()
    split = study.shortfall_split(f)
    np.testing.assert_allclose(split["total"], split["order"] + split["bug"], atol=1e-12)
    assert (split["order"] >= -1e-12).all() and (split["bug"] >= -1e-12).all()
    defs = study.definitions_table(f)
    ap = defs[defs["method"] == "alphaprun"]
    np.testing.assert_allclose(ap["to_best_mean"], 1.0)  # by construction, both definitions
    assert set(ap["rank"]) == {1} and set(defs["definition"]) == {"any order", "fixed order"}


def test_split_separates_the_bug_from_the_order():
    rows = []
    # an unused verifier zeroes upstream (bug only); a wrong order costs 2 of 22 (order only)
    for cid, (costs, values, budgets) in enumerate([([5, 5], [1, 1], [5, 0.5]),
                                                    ([5, 5, 1, 1], [10, 10, 1, 1], [2, 10])]):
        for solver in ("exact", "ordered", "upstream"):
            rows.append({"case.model": "m", "case.method": "alphaprun", "case.case_id": cid,
                         "case.solver": solver, "original_case": cid,
                         "objective": solve(costs, values, budgets, solver).value})
    split = study.shortfall_split(pd.DataFrame(rows)).set_index("case.case_id")
    assert (split.loc[0, "order"], split.loc[0, "bug"]) == (0.0, 1.0)
    assert split.loc[1, "order"] == pytest.approx(2 / 22) and split.loc[1, "bug"] == 0.0


def test_method_tests_match_scipy_and_statsmodels_over_original_cases():
    f = frame(n_orig=7, per=3)
    t = study.method_tests(f)
    assert len(t) == 2 * 6  # two definitions x proxy pairs
    assert list(t.columns[-len(stats.VERDICT_COLUMNS):]) == list(stats.VERDICT_COLUMNS)
    assert all(stats.check_verdict(r) is None for r in t.to_dict("records"))
    ps = []
    for _, r in t.iterrows():
        solver = {v: k for k, v in study.DEFINITIONS.items()}[r["definition"]]
        part = f[f["case.solver"] == solver]
        per = part.pivot_table(index="original_case", columns="case.method", values="ratio")
        d = (per[r["a"]] - per[r["b"]]).to_numpy()  # unit means: 7 original cases
        assert r["n_units"] == 7 and r["estimate"] == pytest.approx(d.mean())
        p = sps.wilcoxon(d).pvalue if np.any(d != d[0]) else np.nan
        assert r["p"] == pytest.approx(p, nan_ok=True)
        ps.append(p)
    ok = np.isfinite(ps)
    np.testing.assert_allclose(t["p_holm"].to_numpy()[ok],
                               multipletests(np.asarray(ps)[ok], method="holm")[1])


def test_split_tests_verdicts_follow_from_their_rows():
    t = study.split_tests(study.shortfall_split(frame(n_orig=8)))
    assert list(t["model"]) == ["m"] and t["n_units"].iloc[0] == 8
    assert set(t["verdict"]) <= {"larger", "smaller", stats.NOT_SHOWN}
    assert t["contrast"].iloc[0] == "bug - order effect" and t["better"].iloc[0] == "below"
    assert all(stats.check_verdict(r) is None for r in t.to_dict("records"))


def test_goals_read_rounds_and_the_limits():
    up = pd.DataFrame([{"case.model": "a", "instances": 20, "exact_rounds_s": [1.0] * 7,
                        "upstream_rounds_s": [2.0, 2.1, 1.9, 2.2, 2.0, 2.05, 1.95]},
                       {"case.model": "b", "instances": 20, "exact_rounds_s": [1.0, 1.1, 0.9],
                        "upstream_rounds_s": [0.5, 0.6, 0.55]}])
    scal = pd.DataFrame([{"case.model": "a", "case.solver": "exact", "case.M": 96,
                          "case.case_id": 1, "rounds_s": [0.003, 0.004, 0.002, 0.003, 0.005]},
                         {"case.model": "a", "case.solver": "exact", "case.M": 46,
                          "case.case_id": 2, "rounds_s": [1.0] * 5}])
    g = study.speed_goals(up, scal)
    assert list(g["verdict"]) == ["met", stats.NOT_SHOWN, "met"]  # b: 3 rounds < MIN_UNITS
    assert g["estimate"].iloc[0] == pytest.approx(np.median(1 / np.asarray(
        up["upstream_rounds_s"].iloc[0])))
    assert g["estimate"].iloc[2] == pytest.approx(3.0) and g["null"].iloc[2] == 50
    assert all(stats.check_verdict(r) is None for r in g.to_dict("records"))
    slow = study.speed_goals(up.iloc[:0], scal.assign(rounds_s=[[0.06] * 6, [1.0]]))
    assert list(slow["verdict"]) == ["missed"]


def test_report_writes_the_study_tables_with_checkable_verdicts(tmp_path):
    f = frame(n_orig=6)
    recs = [{"case": f"solve[{i}]", "kind": "solve", "scale": "tiny",
             "config": {"case": {"model": r["case.model"], "method": r["case.method"],
                                 "case_id": int(r["case.case_id"]), "solver": r["case.solver"]}},
             "metrics": {"objective": r["objective"], "benefit": r["benefit"],
                         "ratio": r["ratio"], "ratio_to_best": 1.0, "short": 0, "gap": 0.0,
                         "original_case": int(r["original_case"])}}
            for i, r in f.iterrows()]
    report(recs, tmp_path)
    for name in ("definitions", "shortfall_split", "split_tests", "method_tests"):
        assert (tmp_path / f"{name}.csv").exists(), name
    for name in ("split_tests", "method_tests"):
        with (tmp_path / f"{name}.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        assert rows and all(stats.check_verdict(r) is None for r in rows), name
    assert "by construction" in (tmp_path / "README.md").read_text()


@needs_shared
def test_original_cases_are_13_units_of_10():
    ids = [instances.original_case(c["case_id"]) for c in data.experiment_cases()]
    assert len(ids) == 130 and len(set(ids)) == 13
    assert all(ids.count(i) == 10 for i in set(ids))


@needs_shared
def test_measure_upstream_records_rounds_and_never_beats_exact():
    cfg = dataclasses.replace(CONFIGS["tiny"], upstream_models=("opt_125m",), upstream_cases=2,
                              goal_rounds=3)
    out = measure_upstream(upstream_cases(cfg)[0], cfg, Timer(None, "cpu"))
    assert out["instances"] == 4 and len(out["exact_rounds_s"]) == 3
    assert out["exact_vs_upstream_lo"] <= out["exact_vs_upstream"] <= out["exact_vs_upstream_hi"]
    assert 0 <= out["upstream_short"] <= 4
