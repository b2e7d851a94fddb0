"""The SubLoRA report and `analyze` on synthetic sweep records (no model)."""

import json

import numpy as np
import pandas as pd
import pytest

from benchlab.core.errors import BenchlabError
from benchlab.sublora import bounds as B
from benchlab.sublora.analyze import analyze_main, collect
from benchlab.sublora.report import plot_pareto, report, runs_frame, summarize

TEN = ["pareto_frontier_d1000.png", "pareto_frontier_d2000.png",
       "compression_comparison_d1000.png", "compression_comparison_d2000.png",
       "allocation_comparison_grid.png", "learned_gating_heatmap_d1000.png",
       "learned_gating_heatmap_d2000.png", "learned_gating_trend.png",
       "summary_table.csv", "summary_table.tex"]
MODES = [("uniform", None), ("fixed", 0.2), ("fixed", 0.5), ("fixed", 0.8), ("learned", None)]
SEEDS = (42, 123, 999)


def sweep_records(skip=()) -> list[dict]:
    """30 records shaped like bench/test_sublora.py's: SweepCase fields + run_point metrics."""
    rng = np.random.default_rng(0)
    out = []
    for d in (1000, 2000):
        for mode, ratio in MODES:
            for seed in SEEDS:
                if (d, mode) in skip:
                    continue
                metrics = {"bound_value": 9 + rng.normal(0, 0.1),
                           "empirical_bpd": 6 + rng.normal(0, 0.1),
                           "kl_divergence": 2.0 * d + rng.normal(0, 5),
                           "compressed_size_bits": 3 * d + int(rng.integers(0, 20)),
                           "val_loss": 4 + rng.normal(0, 0.01), "random_guess_bpd": 12.0,
                           "raw_bpd": 5.5 + rng.normal(0, 0.1),
                           "gamma_B": (rng.uniform(0, 1, 4).tolist() if mode == "learned"
                                       else [ratio] * 4 if mode == "fixed" else [])}
                case_id = f"d{d}-{mode}{ratio or ''}-s{seed}"
                out.append({"experiment": "sublora", "case": f"test_sweep[{case_id}]",
                            "config": {"case": {"id": case_id, "d": d, "mode": mode,
                                                "ratio": ratio or 0.5, "seed": seed,
                                                "kind": "sweep"}},
                            "metrics": metrics, "time": None})
    # records of other benchmarks (no bound_value, or case.kind not "sweep") must be ignored
    out.append({"experiment": "sublora", "case": "test_step_time[gpt2-tiny]",
                "config": {"case": {"id": "gpt2-tiny"}}, "metrics": {"ratio": 1.3}, "time": None})
    out.append({"experiment": "sublora", "case": "test_bound_time[bound-d1000-learned]",
                "config": {"case": {"id": "bound-d1000-learned", "d": 1000, "mode": "learned",
                                    "seed": 42, "kind": "bound"}},
                "metrics": {"bound_value": 50.0, "empirical_bpd": 50.0}, "time": None})
    out.append({"experiment": "sublora", "case": "test_train_step[step-d1000-dense]",
                "config": {"case": {"id": "step-d1000-dense", "d": 1000, "projector": "dense",
                                    "mode": "uniform", "kind": "step"}},
                "metrics": {"step_ratio": 1.3, "subspace_step_ms": 13.0, "lora_step_ms": 10.0,
                            "ratio_goal": 1.5, "d": 1000}, "time": None})
    return out


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    report(sweep_records(), out)
    return out


def test_ten_files(full_report):
    for name in TEN:
        assert (full_report / name).stat().st_size > 0, name
    step = pd.read_csv(full_report / "step_time.csv")
    assert step[["d", "projector", "step_ratio"]].values.tolist() == [[1000, "dense", 1.3]]
    assert (full_report / "bound_eval_time.csv").exists()


def test_summary_keeps_learned_mode(full_report):
    table = pd.read_csv(full_report / "summary_table.csv")
    assert len(table) == 10
    learned = table[table["mode"] == "learned"]
    assert sorted(learned["d"]) == [1000, 2000] and (learned["n_seeds"] == 3).all()
    assert "learned" in (full_report / "summary_table.tex").read_text()
    assert "raw_bpd_mean" in table and "top1_error_mean" not in table  # optional columns
    # the fork's trap: grouping on (mode, ratio) with ratio NaN for learned drops learned
    runs = runs_frame(sweep_records())
    naive = runs.groupby(["d", "mode", "ratio"]).size().reset_index()
    assert "learned" not in set(naive["mode"]) and "learned" in set(summarize(runs)["mode"])


def test_summary_statistics_over_seeds():
    records = sweep_records()
    summ = summarize(runs_frame(records))
    row = summ[(summ["d"] == 1000) & (summ["label"] == "fixed r=0.8")].iloc[0]
    cases = [(r["config"]["case"], r["metrics"]) for r in records]
    values = [m["bound_value"] for c, m in cases if c.get("kind") == "sweep" and c["d"] == 1000
              and c["mode"] == "fixed" and c["ratio"] == 0.8]
    assert len(values) == 3
    assert row["bound_value_mean"] == pytest.approx(np.mean(values))
    assert row["bound_value_std"] == pytest.approx(np.std(values, ddof=1))
    assert list(summ[summ["d"] == 1000]["label"]) == [
        "uniform", "fixed r=0.2", "fixed r=0.5", "fixed r=0.8", "learned"]


def test_missing_modes_do_not_crash(tmp_path):
    records = [r for r in sweep_records(skip={(2000, m) for m, _ in MODES} | {(1000, "uniform")})]
    report(records, tmp_path, budgets=[1000, 2000])
    for name in TEN:
        assert (tmp_path / name).exists(), name
    table = pd.read_csv(tmp_path / "summary_table.csv")
    assert set(table["d"]) == {1000} and "uniform" not in set(table["mode"])


def test_deterministic_bytes(tmp_path):
    summ = summarize(runs_frame(sweep_records()))
    plot_pareto(summ, 1000, tmp_path / "a")
    plot_pareto(summ, 1000, tmp_path / "b")
    name = "pareto_frontier_d1000.png"
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def write_runs(root, records) -> None:
    """Run folders as the training + eval-bounds commands leave them."""
    msg = B.MessageLength(code_bits=3000, counts_bits=121, codebook_bits=176, side_bits=0,
                          d=1000, levels=11, n_side=0)
    for i, rec in enumerate(r for r in records if "bound_value" in r["metrics"]):
        case, met = rec["config"]["case"], rec["metrics"]
        if case.get("kind") != "sweep":
            continue
        risks = [met["empirical_bpd"] + 0.01 * k for k in range(len(B.DEFAULT_ALPHAS))]
        bm = B.bounds_metrics(msg, risks, vocab_size=4096, m=300_000, s=200, extra_bits=5)
        folder = root / f"run{i:02d}"
        B.save_bounds_metrics(bm, folder)
        meta = {"config": {"sublora": {"intrinsic_dim": case["d"],
                                       "allocation_mode": case["mode"],
                                       "allocation_ratio": case["ratio"]},
                           "system": {"seed": case["seed"]}, "bounds": {"sample_seed": 7}},
                "val_loss": met["val_loss"], "gamma_B": met["gamma_B"]}
        (folder / "best_ckpt.json").write_text(json.dumps(meta))


def test_analyze_reads_run_folders(tmp_path):
    records = sweep_records()
    write_runs(tmp_path / "runs", records)
    rc = analyze_main(["--results_dir", str(tmp_path / "runs"), "--output_dir",
                       str(tmp_path / "out"), "--budgets", "1000", "--seeds", "42,123"])
    assert rc == 0
    for name in TEN:  # one budget asked for: only its files (the grid and trend always)
        assert (tmp_path / "out" / name).exists() == ("d2000" not in name), name
    table = pd.read_csv(tmp_path / "out" / "summary_table.csv")
    assert len(table) == 5 and (table["n_seeds"] == 2).all() and set(table["d"]) == {1000}
    got = collect(tmp_path / "runs")
    assert len(got) == 30
    want = [B.load_bounds_metrics(tmp_path / "runs" / r["case"][8:-1] / "bounds_metrics.json")
            ["bound_value"] for r in got if r["config"]["case"]["intrinsic_dim"] == 1000
            and r["config"]["case"]["allocation_mode"] == "learned"
            and r["config"]["case"]["seed"] in (42, 123)]
    mean = table[table["mode"] == "learned"]["bound_value_mean"].item()
    assert len(want) == 2 and mean == pytest.approx(np.mean(want), rel=1e-5)  # csv: 6 digits
    learned = [r for r in got if r["config"]["case"]["allocation_mode"] == "learned"]
    assert all(len(r["metrics"]["gates"]) == 4 for r in learned)
    fixed = [r["config"]["case"]["allocation_ratio"] for r in got
             if r["config"]["case"]["allocation_mode"] == "fixed"]
    assert sorted(set(fixed)) == [0.2, 0.5, 0.8]


def test_analyze_fork_folder_names_and_errors(tmp_path):
    msg = B.MessageLength(code_bits=3000, counts_bits=121, codebook_bits=176, side_bits=0,
                          d=1000, levels=11, n_side=0)
    bm = B.bounds_metrics(msg, [6.0] * 8, vocab_size=4096, m=300_000, s=200, extra_bits=5)
    B.save_bounds_metrics(bm, tmp_path / "r" / "sublora-d1000-fixed_bheavy-seed42")
    (rec,) = collect(tmp_path / "r")
    assert rec["config"]["case"] == {"intrinsic_dim": 1000, "allocation_mode": "fixed",
                                     "allocation_ratio": 0.8, "seed": 42}
    with pytest.raises(BenchlabError, match="no bounds_metrics.json"):
        collect(tmp_path / "r", seeds=[7])
    with pytest.raises(BenchlabError, match="no such directory"):
        collect(tmp_path / "missing")
    B.save_bounds_metrics(bm, tmp_path / "q" / "run-x")
    with pytest.raises(BenchlabError, match="intrinsic_dim: not found"):
        collect(tmp_path / "q")


def test_analyze_reads_eval_bounds_inputs(tmp_path):
    """Without best_ckpt.json, the facts come from the `inputs` evaluate.py saves."""
    msg = B.MessageLength(code_bits=3000, counts_bits=121, codebook_bits=176, side_bits=96,
                          d=2000, levels=11, n_side=3)
    info = {"d": 2000, "mode": "learned", "ratio": 0.5, "seed": 123,
            "gamma_B": [0.2, 0.6, 0.9]}
    bm = B.bounds_metrics(msg, [6.0] * 8, vocab_size=4096, m=300_000, s=200, extra_bits=5,
                          inputs=info)
    B.save_bounds_metrics(bm, tmp_path / "r" / "out")
    (rec,) = collect(tmp_path / "r")
    assert rec["config"]["case"] == {"intrinsic_dim": 2000, "allocation_mode": "learned",
                                     "allocation_ratio": None, "seed": 123}
    assert rec["metrics"]["gates"] == [0.2, 0.6, 0.9]
    assert rec["metrics"]["bound_value"] == bm["bound_value"]
