"""The SubLoRA report, its tested claims and `analyze` on synthetic sweep records (no model)."""

import json

import numpy as np
import pandas as pd
import pytest

from benchlab.core.errors import BenchlabError
from benchlab.core.stats import adjust
from benchlab.sublora import bounds as B
from benchlab.sublora.analyze import analyze_main, collect
from benchlab.sublora.claims import dominance, gate_tests, mode_pairs, share_trend, w0_claims
from benchlab.sublora.report import plot_pareto, report, runs_frame, summarize

TEN = ["pareto_frontier_d1000.png", "pareto_frontier_d2000.png",
       "compression_comparison_d1000.png", "compression_comparison_d2000.png",
       "allocation_comparison_grid.png", "learned_gating_heatmap_d1000.png",
       "learned_gating_heatmap_d2000.png", "learned_gating_trend.png",
       "summary_table.csv", "summary_table.tex", "claims.md"]
MODES = [("w0", None), ("uniform", None), ("fixed", 0.2), ("fixed", 0.5), ("fixed", 0.8),
         ("learned", None)]
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
                w0 = mode == "w0"
                metrics = {"bound_value": (12.9 if w0 else 9) + rng.normal(0, 0.1),
                           "empirical_bpd": 6 + rng.normal(0, 0.1), "best_alpha": 0.5,
                           "top1_error_bound": 1.05 if w0 else 0.9 + rng.normal(0, 0.01),
                           "kl_divergence": 2.0 * d + rng.normal(0, 5),
                           "compressed_size_bits": 3 * d + int(rng.integers(0, 20)),
                           "val_loss": 4 + rng.normal(0, 0.01), "random_guess_bpd": 12.0,
                           "raw_bpd": 5.5 + rng.normal(0, 0.1),
                           "gamma_B": (rng.uniform(0, 1, 4).tolist() if mode == "learned"
                                       else [ratio] * 4 if mode == "fixed" else [])}
                case_id = f"d{d}-{mode}{ratio or ''}-s{seed}"
                metrics["init_from"] = "scratch"
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


def test_summary_keeps_learned_mode_and_shows_the_baseline(full_report):
    table = pd.read_csv(full_report / "summary_table.csv")
    assert len(table) == 12
    assert list(table[table["d"] == 1000]["mode"]) == [
        "w=0 (untrained)", "uniform (global)", "fixed r=0.2", "fixed r=0.5", "fixed r=0.8",
        "learned"]
    learned = table[table["mode"] == "learned"]
    assert sorted(learned["d"]) == [1000, 2000] and (learned["n_seeds"] == 3).all()
    assert "learned" in (full_report / "summary_table.tex").read_text()
    assert {"raw bpd", "smoothed bpd", "alpha"} <= set(table.columns)
    w0 = table[table["mode"] == "w=0 (untrained)"]
    assert (w0["top-1 error bound"] == "vacuous").all()
    assert (w0["below w=0 (min)"] == "reference").all()
    assert (w0["bound"] == "vacuous").all()  # 12.9 >= log2 V = 12: the one vacuity rule
    assert not (table[table["mode"] == "uniform (global)"]["top-1 error bound"]
                == "vacuous").any()
    # the fork's trap: grouping on (mode, ratio) with ratio NaN for learned drops learned
    runs = runs_frame(sweep_records())
    naive = runs.groupby(["d", "mode", "ratio"]).size().reset_index()
    assert "learned" not in set(naive["mode"]) and "learned" in set(summarize(runs)["mode"])


def test_summary_statistics_over_seeds():
    records = sweep_records()
    summ = summarize(runs_frame(records))
    row = summ[(summ["d"] == 1000) & (summ["label"] == "fixed r=0.8")].iloc[0]
    cases = [(r["config"]["case"], r["metrics"]) for r in records]
    pick = [(c["seed"], m["bound_value"]) for c, m in cases if c.get("kind") == "sweep"
            and c["d"] == 1000 and c["mode"] == "fixed" and c["ratio"] == 0.8]
    base = dict((c["seed"], m["bound_value"]) for c, m in cases if c.get("kind") == "sweep"
                and c["d"] == 1000 and c["mode"] == "w0")
    values = [v for _, v in pick]
    assert len(values) == 3
    assert row["bound_value_mean"] == pytest.approx(np.mean(values))
    assert row["bound_value_std"] == pytest.approx(np.std(values, ddof=1))
    gaps = [base[s] - v for s, v in pick]
    assert row["below_w0_mean"] == pytest.approx(np.mean(gaps))
    assert row["below_w0_min"] == pytest.approx(min(gaps))


def _values(records, d, mode, ratio=None, metric="bound_value"):
    """{seed: value}, picked straight from the records (independent of runs_frame)."""
    return {r["config"]["case"]["seed"]: r["metrics"][metric] for r in records
            if r["config"]["case"].get("kind") == "sweep" and r["config"]["case"]["d"] == d
            and r["config"]["case"]["mode"] == mode
            and (ratio is None or r["config"]["case"]["ratio"] == ratio)}


def test_claims_match_scipy():
    from scipy import stats

    records = sweep_records()
    runs = runs_frame(records)
    pairs = mode_pairs(runs, 1000)
    assert len(pairs) == 10  # 5 trained modes, w = 0 apart
    a, b = _values(records, 1000, "uniform"), _values(records, 1000, "fixed", 0.8)
    row = pairs[(pairs["a"] == "uniform (global)") & (pairs["b"] == "fixed r=0.8")].iloc[0]
    x, y = [a[s] for s in SEEDS], [b[s] for s in SEEDS]
    assert row["p"] == pytest.approx(stats.ttest_rel(x, y).pvalue, rel=1e-12)
    assert row["diff"] == pytest.approx(np.mean(np.subtract(x, y)))
    # gates: per group and pooled one-sample t-tests against 0.5
    gates = {s: g for s, g in _values(records, 2000, "learned", metric="gamma_B").items()}
    g = gate_tests(runs, 2000)
    col = [gates[s][1] for s in SEEDS]
    assert g["per_group"][1][2] == pytest.approx(stats.ttest_1samp(col, 0.5).pvalue, rel=1e-12)
    pooled = [np.mean(gates[s]) for s in SEEDS]
    assert g["pooled"][2] == pytest.approx(stats.ttest_1samp(pooled, 0.5).pvalue, rel=1e-12)
    text = " ".join(w0_claims(runs, 1000))
    assert text.count("3 of 3 seeds >= 1 bit below") == 5


def test_share_trend_is_the_least_squares_slope_of_the_gain_on_r():
    rows = [{"d": 1, "mode": "w0", "seed": s, "ratio": np.nan, "bound_value": 12.0 + 0.1 * i}
            for i, s in enumerate(SEEDS)]
    pts = []
    for i, s in enumerate(SEEDS):
        for r, gain in ((0.2, 0.5), (0.5, 0.9), (0.8, 1.4)):
            g = gain + 0.05 * (i - 1) * r
            rows.append({"d": 1, "mode": "fixed", "seed": s, "ratio": r,
                         "bound_value": 12.0 + 0.1 * i - g})
            pts.append((r, g))
    t = share_trend(pd.DataFrame(rows), 1)
    x, y = np.array(pts).T
    slope = np.polyfit(x, y, 1)[0]  # numpy's least squares, not scipy's
    assert t["n"] == 9 and t["slope"] == pytest.approx(slope, rel=1e-9) and t["p"] < 1e-4
    flat = pd.DataFrame([r if r["mode"] == "w0" else {**r, "bound_value": 11.0} for r in rows])
    assert share_trend(flat[flat["ratio"].ne(0.8) | flat["mode"].eq("w0")], 1)["slope"] < 0.2
    assert share_trend(flat[flat["ratio"].isna() | flat["ratio"].eq(0.2)], 1) is None


def test_holm_by_hand():
    """The claims' Holm is core.stats.adjust (statsmodels); by hand, nan kept out of the family."""
    def holm(p):
        return adjust(p, "holm")

    # p sorted 0.01, 0.02, 0.04 -> 3*0.01, max(0.03, 2*0.02), max(0.04, 1*0.04)
    assert holm([0.04, 0.01, 0.02]).tolist() == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.6]).tolist() == pytest.approx([1.0, 1.0])
    assert np.isnan(holm([np.nan, 0.01])[0]) and holm([np.nan, 0.01])[1] == 0.01


def test_dominance_needs_both_axes():
    rows = []
    for seed, noise in zip(SEEDS, (0.0, 0.1, -0.05), strict=True):
        for label, kl, bpd in (("uniform", 100 + noise, 5 + noise), ("learned", 200, 7 - noise),
                               ("fixed r=0.5", 50, 9 + noise)):
            rows.append({"d": 1, "label": label, "mode": label.split()[0], "seed": seed,
                         "kl_divergence": kl, "raw_bpd": bpd})
    dom = dominance(pd.DataFrame(rows), 1)
    assert [(r["a"], r["b"]) for r in dom] == [("uniform", "learned")]
    assert dom[0]["p"] == max(dom[0]["p_kl"], dom[0]["p_bpd"]) < 0.05


def test_missing_modes_do_not_crash(tmp_path):
    records = [r for r in sweep_records(skip={(2000, m) for m, _ in MODES} | {(1000, "uniform")})]
    report(records, tmp_path, budgets=[1000, 2000])
    for name in TEN:
        assert (tmp_path / name).exists(), name
    table = pd.read_csv(tmp_path / "summary_table.csv")
    assert set(table["d"]) == {1000} and "uniform (global)" not in set(table["mode"])
    assert "w=0 (untrained)" in set(table["mode"])


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
        w0 = case["mode"] == "w0"
        folder = root / f"run{i:02d}"
        B.save_bounds_metrics(bm, folder)
        meta = {"config": {"sublora": {"intrinsic_dim": case["d"],
                                       "allocation_mode": "uniform" if w0 else case["mode"],
                                       "allocation_ratio": case["ratio"]},
                           "system": {"seed": case["seed"]}, "bounds": {"sample_seed": 7},
                           "model": {"init_from": "scratch"}},
                "val_loss": met["val_loss"], "gamma_B": met["gamma_B"], "step": 0 if w0 else 9}
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
    assert len(table) == 6 and (table["n_seeds"] == 2).all() and set(table["d"]) == {1000}
    assert table["mode"].iloc[0] == "w=0 (untrained)"
    got = collect(tmp_path / "runs")
    assert len(got) == 36 and sum(r["config"]["case"]["mode"] == "w0" for r in got) == 6
    want = [B.load_bounds_metrics(tmp_path / "runs" / r["case"][6:-1] / "bounds_metrics.json")
            ["bound_value"] for r in got if r["config"]["case"]["d"] == 1000
            and r["config"]["case"]["mode"] == "learned"
            and r["config"]["case"]["seed"] in (42, 123)]
    mean = float(table[table["mode"] == "learned"]["bound"].item().split(" ± ")[0])
    assert len(want) == 2 and mean == pytest.approx(np.mean(want), abs=1e-3)  # 3 decimals
    learned = [r for r in got if r["config"]["case"]["mode"] == "learned"]
    assert all(len(r["metrics"]["gamma_B"]) == 4 for r in learned)
    fixed = [r["config"]["case"]["ratio"] for r in got if r["config"]["case"]["mode"] == "fixed"]
    assert sorted(set(fixed)) == [0.2, 0.5, 0.8]
    assert "SubLoRA from scratch" in (tmp_path / "out" / "claims.md").read_text()


def test_analyze_fork_folder_names_and_errors(tmp_path):
    msg = B.MessageLength(code_bits=3000, counts_bits=121, codebook_bits=176, side_bits=0,
                          d=1000, levels=11, n_side=0)
    bm = B.bounds_metrics(msg, [6.0] * 8, vocab_size=4096, m=300_000, s=200, extra_bits=5)
    B.save_bounds_metrics(bm, tmp_path / "r" / "sublora-d1000-fixed_bheavy-seed42")
    (rec,) = collect(tmp_path / "r")
    assert rec["config"]["case"] == {"id": "d1000-fixed_bheavy-s42", "kind": "sweep", "d": 1000,
                                     "mode": "fixed", "ratio": 0.8, "seed": 42}
    assert rec["case"] == "sweep[sublora-d1000-fixed_bheavy-seed42]" and rec["config_hash"]
    B.save_bounds_metrics(bm, tmp_path / "w" / "d2000_w0_s7")  # run-all's folder name
    (rec,) = collect(tmp_path / "w")
    assert rec["config"]["case"] == {"id": "d2000-w0-s7", "kind": "sweep", "d": 2000,
                                     "mode": "w0", "ratio": 0.5, "seed": 7}
    with pytest.raises(BenchlabError, match="no bounds_metrics.json"):
        collect(tmp_path / "r", seeds=[7])
    with pytest.raises(BenchlabError, match="no such directory"):
        collect(tmp_path / "missing")
    B.save_bounds_metrics(bm, tmp_path / "q" / "run-x")
    with pytest.raises(BenchlabError, match="d: not found"):
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
    assert rec["config"]["case"] == {"id": "d2000-learned-s123", "kind": "sweep", "d": 2000,
                                     "mode": "learned", "ratio": 0.5,
                                     "seed": 123}
    assert rec["metrics"]["gamma_B"] == [0.2, 0.6, 0.9]
    assert rec["metrics"]["bound_value"] == bm["bound_value"]
