"""The measuring functions the bench module and asv share (sublora.measure)."""

from benchlab.sublora import CONFIGS, sweep_cases
from benchlab.sublora import measure as M


def test_gain_over_w0_reads_the_w0_bound_of_the_same_d_and_seed(monkeypatch):
    cfg = CONFIGS["tiny"]
    w0, trained = sorted(sweep_cases(cfg), key=lambda c: c.mode != "w0")
    monkeypatch.setattr(M, "_W0", {(w0.d, w0.seed): 12.0})
    assert M.gain_over_w0(cfg, trained, {"bound_value": 10.5}, "cpu") == 1.5
    assert M.gain_over_w0(cfg, w0, {"bound_value": 12.0}, "cpu") is None
