"""The measuring functions the bench module, CLI and asv share (moe_routing.measure)."""

from benchlab.core import Timer
from benchlab.moe_routing import CONFIGS, generate_cases, layer_cases
from benchlab.moe_routing import measure as M


class Rounds:
    """A timer whose rounds take 0.3, 0.1 and 0.2 s."""

    device = "cpu"

    def measure(self, fn, *, warmup, rounds, times):
        fn()
        times.extend([0.3, 0.1, 0.2])


def test_generate_keeps_the_fastest_round(monkeypatch):
    monkeypatch.setattr(M, "run_prompt", lambda setup, routing, p, n, timer:
                        {"inference_time": timer(lambda: None), "prompt": p.id})
    cfg = CONFIGS["tiny"]
    case = generate_cases(cfg)[0]
    out = M.measure_generate(case, cfg, Rounds(), setup=object())
    assert out == {"inference_time": 0.1, "prompt": case.prompt}


def test_layer_scaling_outside_pytest():
    cfg = CONFIGS["tiny"]
    out = M.measure_layer(layer_cases(cfg)[0], cfg, Timer(None, "cpu"))
    assert out["ks"] == list(cfg.layer_ks) and out["relative_times"][-1] == 1.0
