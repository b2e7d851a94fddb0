"""The seed's command set: scalability filtered by model, multi-model runs, per-case files,
comparison text and figures from the CLI's own outputs, case generation, bad input."""

import json

import numpy as np
import pytest

from benchlab.cli import main as top
from benchlab.layer_selection import data

SHARED = data.shared_dir()
needs_shared = pytest.mark.skipif(not (SHARED / "scores").exists(),
                                  reason=f"shared layer-selection data not at {SHARED}")


def ls(*argv) -> int:
    return top(["layer-selection", *map(str, argv)])


def subset(tmp_path, name, keep) -> str:
    doc = json.loads((SHARED / "cases" / name).read_text())
    doc["cases"] = [c for c in doc["cases"] if keep(c)]
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def benefit_of(sig, assignments):  # independent of the solver: sum over the chosen intervals
    return sum(float(np.sum(sig[a:b + 1])) for a, b in filter(None, assignments))


@needs_shared
def test_scalability_run_filters_each_case_by_model(tmp_path):
    scal = subset(tmp_path, "scalability_cases.json", lambda c: c["num_verifiers"] in (1, 46))
    scores = json.loads((SHARED / "scores" / "opt125m_scores.json").read_text())
    total = sum(lay["num_parameters"] for lay in scores["layers"])
    sig = np.array([lay["significance_score"] for lay in scores["layers"]])
    assert ls("run", "--scores", SHARED / "scores" / "opt125m_scores.json", "--norms",
              SHARED / "norms" / "opt_125m_norms.json", "--cases", scal, "--output-dir",
              tmp_path / "o") == 0
    doc = json.loads((tmp_path / "o" / "opt_125m_scalability_results.json").read_text())
    assert doc["model_name"] == "opt_125m" and doc["source_cases_file"] == scal
    assert doc["num_cases"] == 6 and doc["verifier_counts"] == [1, 46]  # 3 per M, this model's
    for r in doc["results"]:
        assert r["total_budget"] == pytest.approx(0.01 * total * r["num_verifiers"])
        assert r["budgets"] == pytest.approx([0.01 * total] * r["num_verifiers"])
        for v in r["results"].values():
            assert v["alphaprun_ratio"] == pytest.approx(
                benefit_of(sig, v["assignments"]) / sig.sum())
    assert not (tmp_path / "o" / "opt_125m_all_results.json").exists()


@needs_shared
def test_multi_model_run_writes_seed_files(tmp_path):
    exp = subset(tmp_path, "experiment_cases.json", lambda c: c["case_id"] <= 3)
    scal = subset(tmp_path, "scalability_cases.json", lambda c: c["num_verifiers"] == 6)
    out = tmp_path / "exp"
    argv = ["run", "--models", "opt_125m", "llama2_7b", "--scores_dir", SHARED / "scores",
            "--norms_dir", SHARED / "norms", "--cases", exp, "--scalability_cases", scal,
            "--output_dir", out, "--plot", "--combined"]
    assert ls(*argv) == 0
    for name in ("opt_125m_all_results.json", "llama2_7b_all_results.json",
                 "opt_125m_scalability_results.json", "opt_125m_comparison.png",
                 "opt_125m_comparison.txt", "llama2_7b_comparison.png",
                 "combined_comparison.png", "combined_comparison.txt", "scalability_plot.png",
                 "opt_125m/case_001_results.json", "llama2_7b/case_003_results.json"):
        assert (out / name).is_file(), name
    doc = json.loads((out / "llama2_7b_all_results.json").read_text())
    one = json.loads((out / "llama2_7b" / "case_002_results.json").read_text())
    assert one["results"] == doc["results"][1]["results"] and one["case_id"] == 2
    ratios = [r["results"]["norm_2"]["alphaprun_ratio"] for r in doc["results"]]
    txt = (out / "llama2_7b_comparison.txt").read_text()
    row = next(line for line in txt.splitlines() if line.startswith("norm_2"))
    assert row.split()[1:3] == ["3", f"{np.mean(ratios):.4f}"]
    assert f"{np.mean(ratios):.4f}" in (out / "combined_comparison.txt").read_text()
    # a rerun resumes from the store (nothing measured, the same files); results of other
    # inputs are never overwritten; --skip_existing keeps the files and plots from them
    before = (out / "opt_125m_all_results.json").read_bytes()
    lines = (out / "store.jsonl").read_text()
    assert ls(*argv) == 0
    assert (out / "store.jsonl").read_text() == lines
    assert ls(*argv, "--solver", "ordered") == 2
    assert ls(*argv, "--skip_existing") == 0
    assert (out / "opt_125m_all_results.json").read_bytes() == before
    # the plot command redraws from the CLI's own outputs alone
    assert ls("plot", "--results-dir", out, "--output-dir", tmp_path / "p") == 0
    assert (tmp_path / "p" / "combined_comparison.txt").read_text() == (
        out / "combined_comparison.txt").read_text()


@needs_shared
def test_unknown_model_and_mismatched_norms_fail_before_writing(tmp_path, capsys):
    scal = subset(tmp_path, "scalability_cases.json", lambda c: c["model_name"] != "opt_125m")
    assert ls("run", "--scores", SHARED / "scores" / "opt125m_scores.json", "--cases", scal,
              "--output-dir", tmp_path / "o") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{scal}: cases[].model_name: no case for model 'opt_125m'" in err
    assert not (tmp_path / "o").exists()
    assert ls("run", "--scores", SHARED / "scores" / "opt125m_scores.json", "--norms",
              SHARED / "norms" / "llama2_7b_norms.json", "--cases", scal, "--output-dir",
              tmp_path / "o") == 2
    err = capsys.readouterr().err.strip()
    assert "llama2_7b_norms.json: layers: 224 layers, scores have 72" in err
    assert not (tmp_path / "o").exists()


def test_plot_rejects_empty_dir_and_malformed_results(tmp_path, capsys):
    assert ls("plot", "--results-dir", tmp_path) == 2
    assert "--results-dir: no *_all_results.json" in capsys.readouterr().err
    bad = tmp_path / "m_all_results.json"
    bad.write_text(json.dumps({"model_name": "m", "results": [
        {"case_id": 1, "results": {"norm_2": {"alphaprun_ratio": "x"}}}]}))
    (tmp_path / "m_comparison.txt").write_text("saved")
    assert ls("plot", "--results-dir", tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"{bad}: results[0].results.norm_2.alphaprun_ratio: missing or not a "
                        "number") and "\n" not in err
    assert (tmp_path / "m_comparison.txt").read_text() == "saved"
    bad.write_text("{not json")
    assert ls("plot", "--results-dir", tmp_path) == 2
    assert str(bad) in capsys.readouterr().err


def test_generate_cases_seed_42(tmp_path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"cases": [{"case_id": 7, "budgets": [100.0, 50.0, 10.0]},
                                          {"case_id": 9, "budgets": [5.0, 5.0, 5.0]}]}))
    assert ls("generate-cases", "--base", base, "--output-dir", tmp_path / "g",
              "--num_perturbations", 4) == 0
    doc = json.loads((tmp_path / "g" / "all_cases.json").read_text())
    assert doc["seed"] == 42 and doc["total_perturbed_cases"] == 8
    assert [c["case_id"] for c in doc["cases"]] == list(range(1, 9))
    rng = np.random.default_rng(42)  # U(0.9, 1.1) factors in order, written out independently
    for c in doc["cases"]:
        orig = np.array([100.0, 50.0, 10.0] if c["original_case_id"] == 7 else [5.0] * 3)
        assert c["budgets"] == pytest.approx(list(orig * rng.uniform(0.9, 1.1, 3)), rel=1e-15)
        one = json.loads((tmp_path / "g" / "cases" / f"case_{c['case_id']:03d}.json").read_text())
        assert one == c
    assert ls("generate-cases", "--base", base, "--output-dir", tmp_path / "g") == 2
    assert data.read_cases(tmp_path / "g" / "all_cases.json")[0]["case_id"] == 1


@needs_shared
def test_exact_vs_milp_both_warm_same_rounds(monkeypatch):
    """Each solver gets one untimed warm-up batch and the same number of timed rounds, in
    rotated order (the old test timed MILP once, cold, against exact's minimum of 3)."""
    import dataclasses

    from benchlab.core import Timer
    from benchlab.layer_selection import CONFIGS, measure, speed_cases

    cfg = dataclasses.replace(CONFIGS["tiny"], speed_cases=2, speed_methods=("norm_2",),
                              rounds=4)
    calls = []
    real = measure.solve
    monkeypatch.setattr(measure, "solve", lambda c, v, b, s="exact": calls.append(s) or
                        real(c, v, b, s))
    out = measure.measure_speed(speed_cases(cfg)[0], cfg, Timer(None, "cpu"))
    assert calls.count("milp") == calls.count("exact") == (1 + 4) * 2
    # warm-up: 2 exact then 2 MILP solves; then each round starts with the other solver
    assert calls[:4] == ["exact", "exact", "milp", "milp"]
    assert [calls[4 + 4 * r] for r in range(4)] == ["exact", "milp", "exact", "milp"]
    assert out["rounds_timed"] == 4 and out["instances"] == 2 and out["max_rel_diff"] <= 1e-9
    assert out["speedup_lo"] <= out["speedup"] <= out["speedup_hi"]
