"""The measuring functions the bench module, CLI and asv share (moe_routing.measure)."""

import numpy as np
import torch

from benchlab.core import Timer
from benchlab.moe_routing import (
    CONFIGS,
    ROUTINGS,
    LayerCase,
    generate_cases,
    layer_cases,
    make_null,
    measure,
    route,
    speed,
)


class Rounds:
    """A timer whose rounds take 0.3, 0.1 and 0.2 s."""

    device = "cpu"

    def measure(self, fn, *, warmup, rounds, times):
        fn()
        times.extend([0.3, 0.1, 0.2])


def test_generate_keeps_the_fastest_round(monkeypatch):
    monkeypatch.setattr(measure, "run_prompt", lambda setup, routing, p, n, timer:
                        {"inference_time": timer(lambda: None), "prompt": p.id})
    cfg = CONFIGS["tiny"]
    case = generate_cases(cfg)[0]
    out = measure.measure_generate(case, cfg, Rounds(), setup=object())
    assert out == {"inference_time": 0.1, "prompt": case.prompt}


def test_layer_scaling_outside_pytest():
    cfg = CONFIGS["tiny"]
    out = measure.measure_layer(layer_cases(cfg)[0], cfg, Timer(None, "cpu"))
    assert out["ks"] == list(cfg.layer_ks) and out["relative_times"][-1] == 1.0


def test_at_equal_count_interpolates_top_k_and_pairs_rounds():
    """BH at a mean of 1.25 experts against top-1 and top-2 interpolated a quarter of the way, by
    hand: rounds of 1.0/2.0 (top-k) give 1.25 per round, so BH at 1.5 is 1.2x in every round."""
    times = {"bh": [1.5, 1.5, 1.5], "topk_1": [1.0] * 3, "topk_2": [2.0] * 3}
    w, topk, r = speed.at_equal_count(times, 1.25, 1, 2)
    assert w == 0.25 and np.allclose(topk, 1.25)
    assert abs(r["ratio"] - 1.2) < 1e-12 and np.allclose(r["ratio_ci"], 1.2)
    assert speed.floor_ceil(1.0) == (1, 1) and speed.floor_ceil(0.4) == (1, 1)
    assert speed.floor_ceil(7.5, 8) == (7, 8) and speed.floor_ceil(9.2, 8) == (8, 8)


def test_layer_equal_count_routes_the_layer_it_times():
    """The mean expert count is that of the BH mask on the layer's own hidden states, recomputed
    here from a fresh block of the same seed and a null from the same calibration states."""
    cfg = CONFIGS["tiny"]
    case = LayerCase("x", "layer_equal", "bh_pooled", 32, 16, 256)
    out = measure.measure_layer_equal(case, cfg, Timer(None, "cpu"))
    block = speed.moe_layer(32, 16)
    g = torch.Generator().manual_seed(1)
    z, x = torch.randn(8192, 32, generator=g), torch.randn(256, 32, generator=g)
    r = ROUTINGS.get("bh_pooled")
    null = make_null(r.null, torch.nn.functional.linear(z, block.gate.weight)[None]).layer(0)
    mask, _ = route(torch.nn.functional.linear(x, block.gate.weight), r, null)
    assert out["mean_experts"] == float(mask.sum(-1).float().mean())
    assert out["topk_lo"] <= out["mean_experts"] <= out["topk_hi"]
    assert (out["hidden"], out["intermediate"], out["tokens"]) == (32, 16, 256)
    lo, hi = out["layer_ratio_ci"]
    assert 0 < lo <= hi and out["bh_layer_time"] > 0 and out["topk_layer_time"] > 0
