"""Cases per scale and the report built from records only.

    pytest tests/lm_timing/test_lmt_report.py -q
"""

import dataclasses

import pandas as pd
import pytest

from benchlab import lm_timing as lt
from benchlab.core import config_hash, to_jsonable
from benchlab.lm_timing import builders as R


@pytest.mark.parametrize("scale", ["tiny", "small", "paper"])
def test_case_ids_unique_and_fields_valid(scale):
    cfg = lt.CONFIGS[scale]
    for fn in (lt.step_cases, lt.pair_cases, lt.warmup_cases, lt.attn_cases, lt.peak_cases,
               lt.modes_cases):
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
    assert [R.peak_n("cpu", p) for p in ("fp32", "bf16")] == [2048, 1024]
    assert R.peak_n("cuda:0", "bf16") == 8192


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


def records():
    cfg = lt.CONFIGS["tiny"]
    out = []
    for c in lt.step_cases(cfg):
        base = {"forward": 10.0, "forward_backward": 30.0, "train_step": 35.0}[c.mode]
        t = base * c.context / 128 * (0.6 if c.precision == "bf16" else 1.0)
        out.append(rec(c, {"status": "ok", "num_params": 3_085_440, "flops": 1e9,
                           "mean_ms": t, "std_ms": 1.0, "median_ms": t, "tokens_per_s": 1e4,
                           "tflops": 0.1, "mfu": 0.2 * c.context / 1024, "peak_memory_mb": 5.0,
                           "first_step_ms": 3 * t, "trial_times_ms": [t, t]}))
    oom = dataclasses.replace(lt.step_cases(cfg)[0], id="2.7B-oom", size="2.7B")
    out.append(rec(oom, {"status": "oom", "reason": "OOM (estimated)"}, timed=False))
    for c in lt.pair_cases(cfg):
        out.append(rec(c, {"status": "ok", "a_median_ms": 9.0, "b_median_ms": 10.0,
                           "ratio": 0.9, "rounds_timed": 2}))
    for c in lt.warmup_cases(cfg):
        m = {"status": "ok", "fresh_process": True}
        for w in c.counts:
            m |= {f"w{w}_mean_ms": 20.0 if w == 0 else 10.0, f"w{w}_lo_ms": float("nan"),
                  f"w{w}_hi_ms": float("nan"), f"w{w}_first_step_ms": 50.0}
        out.append(rec(c, m, timed=False))
    for c in lt.modes_cases(cfg):
        out.append(rec(c, {"status": "ok", "forward_ms": 10.0, "forward_backward_ms": 30.0,
                           "train_step_ms": 36.0, "ratio_forward_backward_over_forward": 3.0,
                           "ratio_forward_backward_over_forward_lo": 2.9,
                           "ratio_forward_backward_over_forward_hi": 3.1,
                           "ratio_train_step_over_forward_backward": 1.2,
                           "ratio_train_step_over_forward_backward_lo": 1.1,
                           "ratio_train_step_over_forward_backward_hi": 1.3,
                           "rounds_timed": 7}))
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
                 "matmul_peak"):
        assert {f"{stem}.md", f"{stem}.csv", f"{stem}.tex"} <= set(names)
    for fig in ("time_vs_context", "fwd_vs_fwd_bwd", "warmup", "mfu_by_size", "peer_ratio"):
        assert f"{fig}.png" in names
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_report_numbers(tmp_path):
    lt.report(records(), tmp_path)
    fb = pd.read_csv(tmp_path / "fwd_vs_bwd.csv")
    row = fb[(fb["size"] == "tiny") & (fb["context"] == 128) & (fb["precision"] == "fp32")]
    assert row["backward_over_forward"].item() == pytest.approx(2.0)
    assert (row["lo"].item(), row["hi"].item()) == (2.9, 3.1)
    text = (tmp_path / "README.md").read_text()
    assert "forward+backward takes 3.00x the forward time (95% CI [2.90, 3.10]; 7 rounds)" in text
    assert "warm-up 0: mean step 20.0 ms (interval not shown at this scale" in text
    assert "67,108,864" in text  # FlopCounterMode's missing attention term, formula is reference
    params = pd.read_csv(tmp_path / "num_params.csv")
    d, f = 2560, 10240  # the 2.7B row appears (an OOM record), its count written out
    assert params.set_index("size").loc["2.7B", "num_params"] == (
        2 * 10000 * d + 32 * (4 * d * d + 3 * d * f + 2 * d) + d)
    assert "2.7B" in set(params["size"]) and "small" in set(params["size"])
    steps = pd.read_csv(tmp_path / "steps.csv")
    assert steps.loc[steps["size"] == "2.7B", "status"].item() == "oom"
    assert list(steps["size"].drop_duplicates()) == ["tiny", "2.7B"]  # model-size order
    pairs = pd.read_csv(tmp_path / "pairs.csv")
    assert pairs["met"].all() and (pairs["ratio_a_over_b"] == 0.9).all()
    att = pd.read_csv(tmp_path / "attention.csv")
    assert (att["einsum_over_sdpa"] == 2.0).all()


def test_report_with_only_oom_records(tmp_path):
    cfg = lt.CONFIGS["tiny"]
    c = lt.step_cases(cfg)[0]
    lt.report([rec(c, {"status": "oom", "reason": "OOM"}, timed=False)], tmp_path)
    assert (tmp_path / "steps.csv").exists()
