"""Seed files: validation with one-line errors, values per method, case rescaling, shared data."""

import json

import numpy as np
import pytest

from benchlab.core.errors import BenchlabError
from benchlab.layer_selection import data, instances, solve

SHARED = data.shared_dir()
needs_shared = pytest.mark.skipif(not (SHARED / "scores").exists(),
                                  reason=f"shared layer-selection data not at {SHARED}")


def scores_doc(n=4):
    return {"model_name": "m", "layers": [
        {"index": i, "name": f"{i // 2}.fc{i % 2 + 1}", "num_parameters": 10 + i,
         "significance_score": 0.5, "pruning_ratio": 0.5, "weight_shape": [2, 5]}
        for i in range(n)]}


def write(tmp_path, name, doc):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def one_line(exc_info, *parts):
    msg = str(exc_info.value)
    assert "\n" not in msg
    for part in parts:
        assert part in msg, msg


def test_scores_missing_field(tmp_path):
    doc = scores_doc()
    del doc["layers"][2]["significance_score"]
    path = write(tmp_path, "s.json", doc)
    with pytest.raises(BenchlabError) as e:
        data.read_scores(path)
    one_line(e, str(path), "layers[2].significance_score", "missing")


def test_scores_negative_cost(tmp_path):
    doc = scores_doc()
    doc["layers"][1]["num_parameters"] = -5
    path = write(tmp_path, "s.json", doc)
    with pytest.raises(BenchlabError) as e:
        data.read_scores(path)
    one_line(e, str(path), "layers[1].num_parameters", "negative")


@pytest.mark.parametrize("doc, field", [({"model_name": "m", "layers": []}, "layers"),
                                        ([], "top level"),
                                        ({"layers": [{"index": 0}]}, "model_name")])
def test_scores_malformed(tmp_path, doc, field):
    path = write(tmp_path, "s.json", doc)
    with pytest.raises(BenchlabError) as e:
        data.read_scores(path)
    one_line(e, str(path), field)


def test_not_json_and_missing_file(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{nope")
    with pytest.raises(BenchlabError, match="not valid JSON"):
        data.read_scores(bad)
    with pytest.raises(BenchlabError, match="no such file"):
        data.read_scores(tmp_path / "none.json")


def test_cases_budgets_wrong_length(tmp_path):
    doc = {"cases": [{"case_id": 1, "budgets": [1, 2, 3]}, {"case_id": 2, "budgets": [1, 2]}]}
    path = write(tmp_path, "c.json", doc)
    with pytest.raises(BenchlabError) as e:
        data.read_cases(path)
    one_line(e, str(path), "cases[1].budgets", "length 2, expected 3")
    doc = {"cases": [{"case_id": 1, "num_verifiers": 4, "budgets": [1, 2, 3]}]}
    with pytest.raises(BenchlabError, match=r"cases\[0\].budgets: length 3, expected 4"):
        data.read_cases(write(tmp_path, "c2.json", doc))
    doc = {"cases": [{"case_id": 1, "budgets": [1, -2]}]}
    with pytest.raises(BenchlabError, match="negative"):
        data.read_cases(write(tmp_path, "c3.json", doc))


def test_norms_must_match_scores(tmp_path):
    s = data.read_scores(write(tmp_path, "s.json", scores_doc(4)))
    norms = {"layers": [{"index": i, "name": "x", "norm_1": 1.0, "norm_2": 1.0, "norm_inf": 1.0}
                        for i in range(3)]}
    with pytest.raises(BenchlabError, match="3 layers, scores have 4"):
        data.read_norms(write(tmp_path, "n.json", norms), s)
    norms["layers"].append({"index": 3, "name": "x", "norm_1": 0.0, "norm_2": 1.0,
                            "norm_inf": 1.0})
    with pytest.raises(BenchlabError, match=r"layers\[3\].norm_1: zero"):
        data.read_norms(write(tmp_path, "n.json", norms), s)


def test_random_values_follow_the_seed_loop():
    L = 50
    m = data.ModelData("m", tuple(str(i) for i in range(L)), np.ones(L), np.ones(L))
    got = data.values_for(m, "random", case_id=7)
    np.random.seed(7)  # the seed runner: one legacy draw per layer, in order
    want = []
    for i in range(L):
        w = 0.1 + 0.9 * (1.0 - (2.0 * (i / (L - 1)) - 1.0) ** 2)
        want.append(float(max(1, int(np.random.randint(1, 1000000) * w))))
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, data.values_for(m, "random", case_id=8))


@needs_shared
def test_shared_models_load_and_values():
    for short in data.SHARED_MODELS:
        m = data.load_model(short)
        doc = json.loads((SHARED / "scores" / data.SHARED_MODELS[short][0]).read_text())
        assert m.total_cost == doc["total_parameters"]
        assert len(m.names) == doc["num_prunable_layers"]
        np.testing.assert_array_equal(data.values_for(m, "norm_2"), 1 / m.norms["norm_2"])
        np.testing.assert_array_equal(data.values_for(m, "norm_inf"), m.norms["norm_inf"])
        np.testing.assert_array_equal(data.values_for(m, "alphaprun"), m.significance)
    with pytest.raises(BenchlabError, match="unknown shared model"):
        data.load_model("gpt5")
    with pytest.raises(BenchlabError, match="method"):
        data.values_for(m, "norm_3")


@needs_shared
def test_case_rescaling_and_counts():
    cases = data.experiment_cases()
    assert len(cases) == 130 and all(len(c["budgets"]) == 3 for c in cases)
    assert len(data.scalability_cases()) == 240
    m = data.load_model("llama2_7b")
    b = instances.case_budgets(m, cases[0]["case_id"])
    assert b.sum() == pytest.approx(0.25 * m.total_cost / 4)  # first case: a quarter of 1/4
    f = b[0] / cases[0]["budgets"][0]
    np.testing.assert_allclose(instances.case_budgets(m, 77), np.array(cases[76]["budgets"]) * f)


@needs_shared
def test_exact_equals_milp_on_shared_sample():
    """A sample of the shared cases (the benchmark checks all of them): exact == MILP optimum,
    and exact >= ordered >= upstream, selections valid."""
    for short in data.SHARED_MODELS:
        m = data.load_model(short)
        big = short == "llama2_70b"  # its MILPs take seconds each: one case, two methods
        for cid in (3,) if big else (3, 88):
            b = instances.case_budgets(m, cid)
            for method in ("alphaprun", "norm_2") if big else data.VALUE_METHODS:
                v = data.values_for(m, method, cid)
                e, p = solve(m.costs, v, b), solve(m.costs, v, b, "milp")
                assert e.value == pytest.approx(p.value, rel=1e-9)
                o, u = solve(m.costs, v, b, "ordered"), solve(m.costs, v, b, "upstream")
                assert u.value <= o.value * (1 + 1e-12) <= e.value * (1 + 2e-12)
    for c in data.scalability_cases()[1::37]:
        m = data.load_model(c["model_name"])
        b = np.array(c["budgets"])
        assert solve(m.costs, m.significance, b).value == pytest.approx(
            solve(m.costs, m.significance, b, "milp").value, rel=1e-9)
