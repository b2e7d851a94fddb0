"""The measuring functions the bench module, CLI and asv share (lm_timing.measure)."""

import numpy as np
import pytest

from benchlab.core import Timer
from benchlab.lm_timing import CONFIGS, MODES, ModesCase, WarmupCase
from benchlab.lm_timing import measure as M


def test_modes_side_by_side_three_steps():
    case = ModesCase("t", "tiny", 16, "fp32", MODES, 2, 64, 1, 4)
    out = M.measure_modes(case, CONFIGS["tiny"], Timer(None, "cpu"))
    assert out["status"] == "ok" and out["rounds_timed"] == 4
    for m in MODES:
        assert len(out[f"{m}_times_ms"]) == 4
    f, fb = np.array(out["forward_times_ms"]), np.array(out["forward_backward_times_ms"])
    r = "ratio_forward_backward_over_forward"
    assert out[r] == pytest.approx(np.median(fb / f))
    assert out[r + "_lo"] <= out[r] <= out[r + "_hi"]
    assert out[r] > 1.0  # a backward pass is never free
    d, f_, L, V = 128, 512, 2, 64  # the tiny size at vocab 64
    assert out["num_params"] == 2 * V * d + L * (4 * d * d + 3 * d * f_ + 2 * d) + d


def test_warmup_counts_rotate_and_get_intervals(monkeypatch):
    order = []
    fake = {0: [30.0, 32.0, 31.0], 1: [20.0, 21.0, 22.0], 5: [10.0, 10.5, 11.0]}

    def run_fresh(case, w, device, seed, size=None):
        order.append(w)
        return {"status": "ok", "mean_step_time_ms": fake[w][order.count(w) - 1],
                "first_step_ms": 100.0 + w, "num_params": 7}

    monkeypatch.setattr(M, "run_fresh", run_fresh)
    case = WarmupCase("w", "tiny", 16, "forward", (0, 1, 5), 2, 3, 2, 64)
    out = M.measure_warmup(case, CONFIGS["tiny"], Timer(None, "cpu"))
    assert order == [0, 1, 5, 1, 5, 0, 5, 0, 1]  # every round starts one count later
    for w, xs in fake.items():
        assert out[f"w{w}_mean_ms"] == pytest.approx(np.mean(xs))
        assert min(xs) <= out[f"w{w}_lo_ms"] <= np.mean(xs) <= out[f"w{w}_hi_ms"] <= max(xs)
        assert out[f"w{w}_first_step_ms"] == 100.0 + w


def test_oom_is_a_record_not_a_crash():
    case = ModesCase("t", "2.7B", 65536, "fp32", MODES, 64, 10_000, 1, 2)
    out = M.measure_modes(case, CONFIGS["tiny"], Timer(None, "cpu"))
    assert out["status"] == "oom" and "OOM" in out["reason"]
