"""The measuring functions the bench module, CLI and asv share (lm_timing.measure)."""

import numpy as np
import pytest
import torch

from benchlab.core import Timer
from benchlab.lm_timing import (
    CONFIGS,
    SweepCase,
    WarmupCase,
    builders,
    measure,
    step_cases,
    sweep_cases,
)

VARIANTS = (("forward", "fp32", "sdpa", False), ("forward_backward", "fp32", "sdpa", False),
            ("train_step", "fp32", "sdpa", False), ("forward_backward", "fp32", "einsum", False))


def test_sweep_times_every_variant_in_the_same_rounds():
    case = SweepCase("t", "tiny", 16, VARIANTS, 2, 64, 1, 4)
    out = measure.measure_sweep(case, CONFIGS["tiny"], Timer(None, "cpu"))
    assert out["status"] == "ok" and out["rounds_timed"] == 4
    peak = {}
    for v in VARIANTS:
        tag = builders.variant_tag(*v)
        times = np.array(out[f"{tag}.trial_times_ms"])
        assert len(times) == 4 and len(out[f"{tag}.warmup_times_ms"]) == 1
        assert out[f"{tag}.median_ms"] == pytest.approx(np.median(times))
        # rates and MFU from the median of the side-by-side rounds, not the mean
        per_s = out[f"{tag}.flops"] / (np.median(times) / 1000)
        assert out[f"{tag}.tflops"] == pytest.approx(per_s / 1e12)
        assert out[f"{tag}.mfu"] == pytest.approx(per_s / (out[f"{tag}.peak_tflops"] * 1e12))
        assert out[f"{tag}.tokens_per_s"] == pytest.approx(2 * 16 / (np.median(times) / 1000))
        peak[tag] = out[f"{tag}.flops"]
    fwd = peak["fwd-fp32"]
    assert peak["fwd_bwd-fp32"] == peak["train-fp32"] == 3 * fwd  # backward = 2 x forward
    d, f_, L, V = 128, 512, 2, 64  # the tiny size at vocab 64
    assert out["num_params"] == 2 * V * d + L * (4 * d * d + 3 * d * f_ + 2 * d) + d


def test_sweep_loss_is_the_fresh_models_first_step():
    from benchlab.lm_timing.model import lm_loss

    case = SweepCase("t", "tiny", 16, VARIANTS, 2, 64, 1, 2)
    out = measure.measure_sweep(case, CONFIGS["tiny"], Timer(None, "cpu"))
    prep = builders.prepare("tiny", 16, "forward", "fp32", batch=2, vocab=64)  # independently built
    x, y = builders.random_batch(64, 2, 16)
    with torch.no_grad():
        assert out["loss"] == pytest.approx(float(lm_loss(prep.model(x), y)), rel=1e-6)


def test_variants_of_one_model_share_it_and_its_adamw_state():
    shared = {}
    a = builders.prepare("tiny", 16, "forward", "fp32", batch=2, vocab=64, shared=shared)
    b = builders.prepare("tiny", 16, "train_step", "bf16", batch=2, vocab=64, shared=shared)
    c = builders.prepare("tiny", 16, "train_step", "fp32", batch=2, vocab=64, shared=shared)
    e = builders.prepare("tiny", 16, "forward", "fp32", batch=2, vocab=64, attn="einsum",
                         shared=shared)
    assert a.model is b.model is c.model and e.model is not a.model
    assert sum(isinstance(v, torch.optim.AdamW) for v in shared.values()) == 1
    before = [p.detach().clone() for p in a.model.parameters()]
    b.step()  # one AdamW step moves the shared weights
    assert any(not torch.equal(p, q) for p, q in zip(a.model.parameters(), before, strict=True))


def test_sweep_runs_the_variants_that_fit(monkeypatch):
    real = builders.oom_reason

    def oom_reason(size, context, mode, precision, **kw):
        return "OOM (estimated, test)" if mode == "train_step" else real(
            size, context, mode, precision, **kw)

    monkeypatch.setattr(builders, "oom_reason", oom_reason)
    case = SweepCase("t", "tiny", 16, VARIANTS[:3], 2, 64, 1, 2)
    out = measure.measure_sweep(case, CONFIGS["tiny"], Timer(None, "cpu"))
    assert out["status"] == "ok" and out["train-fp32.status"] == "oom"
    assert "train-fp32.trial_times_ms" not in out and len(out["fwd-fp32.trial_times_ms"]) == 2


def test_sweep_cases_group_each_size_and_context():
    cfg = CONFIGS["tiny"]
    steps, groups = step_cases(cfg), sweep_cases(cfg)
    assert sorted((c.size, c.context, *v) for c in groups for v in c.variants) == sorted(
        (c.size, c.context, c.mode, c.precision, c.attn, c.compile) for c in steps)
    assert len({(c.size, c.context) for c in groups}) == len(groups)
    assert all(c.rounds >= 10 for c in groups)  # timed claims: at least 10 paired rounds


def test_warmup_counts_rotate_and_get_intervals(monkeypatch):
    order = []
    fake = {0: [30.0, 32.0, 31.0], 1: [20.0, 21.0, 22.0], 5: [10.0, 10.5, 11.0]}

    def run_fresh(case, w, device, seed, size=None):
        order.append(w)
        return {"status": "ok", "mean_step_time_ms": fake[w][order.count(w) - 1],
                "first_step_ms": 100.0 + w, "num_params": 7}

    monkeypatch.setattr(measure, "run_fresh", run_fresh)
    case = WarmupCase("w", "tiny", 16, "forward", (0, 1, 5), 2, 3, 2, 64)
    out = measure.measure_warmup(case, CONFIGS["tiny"], Timer(None, "cpu"))
    assert order == [0, 1, 5, 1, 5, 0, 5, 0, 1]  # every round starts one count later
    for w, xs in fake.items():
        assert out[f"w{w}_mean_ms"] == pytest.approx(np.mean(xs))
        assert min(xs) <= out[f"w{w}_lo_ms"] <= np.mean(xs) <= out[f"w{w}_hi_ms"] <= max(xs)
        assert out[f"w{w}_first_step_ms"] == 100.0 + w


def test_oom_is_a_record_not_a_crash():
    case = SweepCase("t", "2.7B", 65536, VARIANTS, 64, 10_000, 1, 2)
    out = measure.measure_sweep(case, CONFIGS["tiny"], Timer(None, "cpu"))
    assert out["status"] == "oom" and all(out[f"{builders.variant_tag(*v)}.status"] == "oom"
                                          for v in VARIANTS)
