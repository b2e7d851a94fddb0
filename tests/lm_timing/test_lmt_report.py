"""Cases per scale and the report built from records only.

    pytest tests/lm_timing/test_lmt_report.py -q
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from benchlab import lm_timing as lt
from benchlab.core import config_hash, to_jsonable
from benchlab.core.report import records_frame
from benchlab.lm_timing import builders
from benchlab.lm_timing.report import _kind, pair_table


@pytest.mark.parametrize("scale", ["tiny", "small", "paper"])
def test_case_ids_unique_and_fields_valid(scale):
    cfg = lt.CONFIGS[scale]
    for fn in (lt.step_cases, lt.sweep_cases, lt.pair_cases, lt.warmup_cases, lt.attn_cases,
               lt.peak_cases):
        cases = fn(cfg)
        ids = [c.id for c in cases]
        assert cases and len(ids) == len(set(ids)), fn.__name__
    for c in lt.step_cases(cfg) + lt.pair_cases(cfg):
        assert c.size in lt.SIZES and c.mode in lt.MODES
    assert hash(cfg) == hash(dataclasses.replace(cfg))  # frozen, hashable data


def test_tiny_scale_has_tiny_sweep_and_small_at_128():
    cfg = lt.CONFIGS["tiny"]
    steps = lt.step_cases(cfg)
    grid = {(c.context, c.mode, c.precision) for c in steps if c.size == "tiny"}
    assert grid >= {(t, m, p) for t in (128, 256, 512, 1024) for m in ("forward",
                    "forward_backward") for p in ("fp32", "bf16")}
    assert {m for _, m, _ in grid} == set(lt.MODES)
    small = [c for c in lt.pair_cases(cfg) if c.size == "small"]  # fp32 only: bf16 is ~50x
    assert {c.context for c in small} == {128} and {c.kind for c in small} == {"peer"}  # on AVX2
    assert {c.a_precision for c in small} == {"fp32"}
    assert {c.kind for c in lt.pair_cases(lt.CONFIGS["small"]) if c.size == "small"} == {
        "peer", "bf16"}  # the small size's bf16 pairs are at small scale


def test_cpu_matmul_peak_size_per_precision():
    assert [builders.peak_n("cpu", p) for p in ("fp32", "bf16")] == [2048, 1024]
    assert builders.peak_n("cuda:0", "bf16") == 8192


def test_paper_scale_is_the_full_table():
    steps = lt.step_cases(lt.CONFIGS["paper"])
    grid = {(c.size, c.context, c.mode, c.precision) for c in steps}
    for size in ("small", "medium", "large", "xl", "2.7B"):
        for ctx in (128, 256, 512, 1024):
            for mode in lt.MODES:
                assert (size, ctx, mode, "bf16") in grid
    assert any(c.compile for c in steps)


def rec(case, metrics, timed=True):
    return {"experiment": "lm_timing", "case": f"test_x[{case.id}]", "config_hash":
            config_hash(case), "code_version": "v", "scale": "tiny",
            "config": {"case": to_jsonable(case)}, "metrics": metrics,
            "time": {"mean": 0.1, "stddev": 0.0, "median": 0.1, "min": 0.1, "max": 0.1,
                     "iqr": 0.0, "rounds": 2} if timed else None}


BASE = {"forward": 10.0, "forward_backward": 30.0, "train_step": 36.0}
NOISE = [1.0, 1.1, 0.9, 1.3, 1.05, 0.95, 1.2, 0.8, 1.15, 1.0]  # a round's shared slowdown


def variant_metrics(mode, prec, context):
    """A variant's metrics as measure_sweep writes them: forward+backward exactly 3x the
    forward and the train step 1.2x forward+backward in every round (NOISE moves all alike)."""
    t = BASE[mode] * context / 128 * (0.6 if prec == "bf16" else 1.0)
    times = [t * k for k in NOISE]
    med = float(np.median(times))
    return {"status": "ok", "flops": 1e9, "trial_times_ms": times, "median_ms": med,
            "mean_ms": float(np.mean(times)), "std_ms": 1.0, "tokens_per_s": 1e4,
            "tflops": 1e9 / (med / 1000) / 1e12, "mfu": 1e9 / (med / 1000) / 2e11,
            "peak_memory_mb": 5.0, "first_step_ms": 3 * t, "warmup_times_ms": [3 * t]}


def pair_metrics(a, b):
    return {"status": "ok", "a_median_ms": float(np.median(a)),
            "b_median_ms": float(np.median(b)), "a_trial_times_ms": a, "b_trial_times_ms": b,
            "rounds_timed": len(a)}


def records():
    cfg = lt.CONFIGS["tiny"]
    out = []
    for c in lt.sweep_cases(cfg):
        m = {"status": "ok", "num_params": 3_085_440, "loss": 9.2, "rounds_timed": 10}
        for mode, prec, attn, comp in c.variants:
            tag = builders.variant_tag(mode, prec, attn, comp)
            m |= {f"{tag}.{k}": v for k, v in variant_metrics(mode, prec, c.context).items()}
        out.append(rec(c, m))
    oom = dataclasses.replace(lt.sweep_cases(cfg)[0], id="2.7B-oom", size="2.7B")
    m = {"status": "oom", "reason": "no variant fits"}
    out.append(rec(oom, m | {f"{builders.variant_tag(*v)}.status": "oom" for v in oom.variants},
                   timed=False))
    for c in lt.pair_cases(cfg):
        b = [10.0 * k for k in NOISE]
        out.append(rec(c, pair_metrics([0.9 * x for x in b], b)))
    for c in lt.warmup_cases(cfg):
        m = {"status": "ok", "fresh_process": True}
        for w in c.counts:
            m |= {f"w{w}_mean_ms": 20.0 if w == 0 else 10.0, f"w{w}_lo_ms": float("nan"),
                  f"w{w}_hi_ms": float("nan"), f"w{w}_first_step_ms": 50.0}
        out.append(rec(c, m, timed=False))
    for c in lt.attn_cases(cfg):
        out.append(rec(c, {"status": "ok", "mean_ms": 2.0 if c.impl == "einsum" else 1.0,
                           "max_abs_diff": 1e-6}))
    for c in lt.peak_cases(cfg):
        out.append(rec(c, {"peak_tflops": 0.2, "n": 2048}))
    return out


def test_report_writes_tables_and_figures_deterministically(tmp_path):
    lt.report(records(), tmp_path / "a")
    lt.report(records(), tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    for stem in ("steps", "num_params", "fwd_vs_bwd", "pairs", "warmup", "attention",
                 "matmul_peak"):  # no "runs": no `lm-timing run` record
        assert {f"{stem}.md", f"{stem}.csv", f"{stem}.tex"} <= set(names)
    for fig in ("time_vs_context", "fwd_vs_fwd_bwd", "warmup", "mfu_by_size", "peer_ratio"):
        assert f"{fig}.png" in names
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_report_numbers(tmp_path):
    lt.report(records(), tmp_path)
    assert not (tmp_path / "runs.csv").exists()
    fb = pd.read_csv(tmp_path / "fwd_vs_bwd.csv")
    row = fb[(fb["size"] == "tiny") & (fb["context"] == 128) & (fb["precision"] == "fp32")]
    assert row["backward_over_forward"].item() == pytest.approx(2.0)
    assert row["lo"].item() == pytest.approx(3.0) and row["hi"].item() == pytest.approx(3.0)
    assert row["train_over_fwd_bwd"].item() == pytest.approx(1.2)
    assert set(fb["context"]) == {128, 256, 512, 1024} and set(fb["precision"]) == {"fp32",
                                                                                    "bf16"}
    text = (tmp_path / "README.md").read_text()
    assert ("tiny ctx 128 fp32: forward+backward takes 3.00x the forward time (95% CI [3.00, "
            "3.00]; 10 paired rounds); the AdamW train step 1.20x") in text
    assert "warm-up 0: mean step 20.0 ms (interval not shown at this scale" in text
    assert "67,108,864" in text  # FlopCounterMode's missing attention term, formula is reference
    params = pd.read_csv(tmp_path / "num_params.csv")
    d, f = 2560, 10240  # the 2.7B row appears (an OOM record), its count written out
    assert params.set_index("size").loc["2.7B", "num_params"] == (
        2 * 10000 * d + 32 * (4 * d * d + 3 * d * f + 2 * d) + d)
    assert "2.7B" in set(params["size"]) and "small" in set(params["size"])
    steps = pd.read_csv(tmp_path / "steps.csv")
    assert (steps.loc[steps["size"] == "2.7B", "status"] == "oom").all()
    assert list(steps["size"].drop_duplicates()) == ["tiny", "2.7B"]  # model-size order
    ok = steps[steps["status"] == "ok"]
    assert len(ok) == len(lt.step_cases(lt.CONFIGS["tiny"])) and (ok["rounds"] == 10).all()
    # the steps table and fwd_vs_bwd are one measurement: the same medians
    both = ok[ok["attn"] == "sdpa"].pivot_table(index=["context", "precision"], columns="mode",
                                                values="median_ms")
    fb = fb.set_index(["context", "precision"])
    for mode in ("forward", "forward_backward"):
        assert np.allclose(both.loc[fb.index, mode], fb[f"{mode}_ms"])
    pairs = pd.read_csv(tmp_path / "pairs.csv")
    assert (pairs["verdict"] == "met").all() and np.allclose(pairs["estimate"], 0.9)
    att = pd.read_csv(tmp_path / "attention.csv")
    assert (att["einsum_over_sdpa"] == 2.0).all()


def test_report_with_only_oom_records(tmp_path):
    cfg = lt.CONFIGS["tiny"]
    c = lt.step_cases(cfg)[0]  # an `lm-timing run` record: timed alone, in "runs"
    lt.report([rec(c, {"status": "oom", "reason": "OOM"}, timed=False)], tmp_path / "run")
    assert (tmp_path / "run" / "runs.csv").exists()
    assert not (tmp_path / "run" / "steps.csv").exists()
    g = lt.sweep_cases(cfg)[0]
    lt.report([rec(g, {"status": "oom", "reason": "OOM"}, timed=False)], tmp_path / "sweep")
    steps = pd.read_csv(tmp_path / "sweep" / "steps.csv")
    assert len(steps) == len(g.variants) and (steps["status"] == "oom").all()


def verdict_of(a_scale, noise, n=10):
    """The pairs table's row of one pair with a / b = a_scale x noise[i] in round i."""
    cfg = lt.CONFIGS["tiny"]
    c = lt.pair_cases(cfg)[0]
    b = [10.0 + i for i in range(n)]
    a = [x * a_scale * k for x, k in zip(b, noise[:n], strict=True)]
    frame = records_frame([rec(c, pair_metrics(a, b))])
    return pair_table(_kind(frame, "peer", "bf16")).iloc[0]


@pytest.mark.parametrize("scale, noise, n, word", [
    (0.9, NOISE, 10, "not shown"),  # ratios 0.72 .. 1.17: the interval holds 1
    (0.9, [1.0, 1.01, 0.99, 1.02, 0.98] * 2, 10, "met"),
    (1.2, [1.0, 1.01, 0.99, 1.02, 0.98] * 2, 10, "missed"),
    (0.5, [1.0, 1.01, 0.99, 1.02, 0.98] * 2, 4, "not shown"),  # under MIN_UNITS rounds
])
def test_pair_goal_is_read_from_the_interval(scale, noise, n, word):
    from benchlab.core.stats import VERDICT_COLUMNS, check_verdict

    row = verdict_of(scale, noise, n)
    ratios = np.array(noise[:n]) * scale
    assert row["verdict"] == word and row["n_units"] == n and row["null"] == 1.0
    assert row["estimate"] == pytest.approx(np.median(ratios))  # independent: numpy's median
    assert row["ci_lo"] <= row["estimate"] <= row["ci_hi"]
    assert np.isnan(row["p"]) and np.isnan(row["p_holm"]) and row["better"] == "below"
    assert check_verdict({k: row[k] for k in VERDICT_COLUMNS}) is None


def test_the_referees_pair_is_not_shown(tmp_path):
    """0.975 [0.88, 1.035] was "met" from its point estimate; its interval holds 1."""
    from benchlab.core.stats import VERDICT_COLUMNS, check_verdict, verdict

    assert verdict(0.88, 1.035, None, 10, null=1.0, better="below",
                   words=("met", "missed")) == "not shown"
    lt.report(records(), tmp_path)
    pairs = pd.read_csv(tmp_path / "pairs.csv")
    assert list(pairs.columns[-len(VERDICT_COLUMNS) - 1:-1]) == list(VERDICT_COLUMNS)
    for _, row in pairs.iterrows():  # each verdict follows from its own row
        assert check_verdict(row.to_dict()) is None
