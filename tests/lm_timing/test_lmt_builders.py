"""Step closures, metrics, memory and OOM handling of benchlab.lm_timing.builders.

    pytest tests/lm_timing/test_lmt_builders.py -q
"""

import numpy as np
import pytest
import torch

from benchlab.core import BenchlabError, time_fn
from benchlab.core.timing import peak_memory
from benchlab.lm_timing import builders
from benchlab.lm_timing.model import ModelConfig, forward_flops

CFG = ModelConfig(32, 64, 2, 4, vocab_size=64)


def prep(mode="forward_backward", precision="fp32", **kw):
    return builders.prepare(CFG, 16, mode, precision, batch=2, vocab=64, **kw)


def test_forward_leaves_no_grads_and_backward_fills_them():
    p = prep("forward")
    p.step()
    assert all(q.grad is None for q in p.model.parameters())
    p = prep("forward_backward")
    before = [q.detach().clone() for q in p.model.parameters()]
    p.step()
    assert all(q.grad is not None for q in p.model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, p.model.parameters(), strict=True))


def test_train_step_updates_weights_and_lowers_loss():
    p = prep("train_step")
    before = [q.detach().clone() for q in p.model.parameters()]
    losses = [float(p.step()) for _ in range(30)]
    assert any(not torch.equal(a, b) for a, b in zip(before, p.model.parameters(), strict=True))
    assert losses[-1] < losses[0]


def test_bf16_autocast_runs_matmuls_in_bf16():
    p = prep("forward", "bf16")
    seen = []
    hook = p.model.blocks[0].ffn.w13.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    loss = p.step()
    hook.remove()
    assert seen == [torch.bfloat16] and loss.dtype == torch.float32


def test_fp16_refused_on_cpu():
    with pytest.raises(BenchlabError, match="fp16"):
        prep("forward", "fp16")


@pytest.mark.parametrize("field,value", [("mode", "sideways"), ("precision", "fp8"),
                                         ("attn", "flash")])
def test_bad_choices_name_the_field(field, value):
    kw = {"mode": "forward", "precision": "fp32"}
    if field in kw:
        kw[field] = value
        with pytest.raises(BenchlabError, match=field):
            prep(**kw)
    else:
        with pytest.raises(BenchlabError, match=field):
            prep(**kw, **{field: value})


def test_peer_and_ours_have_the_same_loss_at_init_scale():
    ours, peer = prep(impl="ours"), prep(impl="peer")
    assert ours.num_params == sum(q.numel() for q in peer.model.parameters())
    # both near ln(vocab) with small random init: a wiring error gives a far-off loss
    for p in (ours, peer):
        assert abs(float(p.step()) - np.log(64)) < 0.5


def test_compile_path_runs_with_eager_backend():
    p = prep("forward_backward", compile=True, compile_backend="eager")
    assert torch.isfinite(p.step())


def test_summarize_metrics_are_consistent():
    p = prep("forward_backward")
    times = time_fn(p.step, warmup=1, trials=4)
    m = builders.summarize(times, p, peak_flops=1e12, peak_bytes=2**20)
    mean_s = np.mean(times)
    assert m["flops"] == 3 * forward_flops(p.cfg, 2, 16)
    assert m["mean_ms"] == pytest.approx(1000 * mean_s)
    assert m["std_ms"] == pytest.approx(1000 * np.std(times, ddof=1))
    assert m["tokens_per_s"] == pytest.approx(2 * 16 / mean_s)
    assert m["mfu"] == pytest.approx(m["flops"] / mean_s / 1e12)
    assert m["peak_memory_mb"] == 1.0 and len(m["trial_times_ms"]) == 4


def test_peak_memory_sees_a_large_allocation():
    def alloc():
        x = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        torch.cuda.synchronize() if torch.cuda.is_available() else None
        import time
        time.sleep(0.02)
        return x.sum()

    assert peak_memory(alloc, "cpu") > 48 * 2**20


def test_matmul_peak_is_the_flops_of_the_fastest_n_by_n_matmul(monkeypatch):
    """2 n^3 FLOPs over the best of the timed trials, measured once per (device, precision, n)."""
    import benchlab.core.timing as T

    calls = []

    def fake_time_fn(fn, device, *, warmup, trials):
        out = fn()
        calls.append((tuple(out.shape), out.dtype, trials))
        return [0.5, 0.25, 0.4][:trials]

    monkeypatch.setattr(T, "time_fn", fake_time_fn)
    builders.matmul_peak.cache_clear()
    try:
        assert builders.matmul_peak("cpu", "bf16", 96) == 2 * 96**3 / 0.25
        assert builders.matmul_peak("cpu", "bf16", 96) == 2 * 96**3 / 0.25
        assert calls == [((96, 96), torch.bfloat16, 3)]  # cached: timed once
    finally:
        builders.matmul_peak.cache_clear()


def test_oom_estimate_refuses_huge_cases_only():
    assert builders.oom_reason("tiny", 128, "forward", "fp32") is None
    big = ModelConfig(2560, 10240, 32, 32)
    reason = builders.oom_reason(big, 1 << 16, "train_step", "fp32")
    assert reason is not None and reason.startswith("OOM")


def test_is_oom_recognises_allocator_errors():
    assert builders.is_oom(torch.OutOfMemoryError("CUDA out of memory"))
    assert builders.is_oom(RuntimeError("[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: "
                                 "not enough memory: you tried to allocate 1 bytes"))
    assert not builders.is_oom(RuntimeError("shape mismatch"))
    assert not builders.is_oom(ValueError("out of memory"))


def test_sample_batch_reads_windows_and_checks_vocab():
    tokens = np.arange(1000, dtype=np.uint16) % 64
    x, y = builders.sample_batch(tokens, 3, 10, seed=1, vocab=64)
    assert x.shape == (3, 10) and torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal((x + 1) % 64, y)  # consecutive tokens of the stream
    with pytest.raises(BenchlabError, match="vocab"):
        builders.sample_batch(np.full(100, 70, dtype=np.uint16), 2, 10, vocab=64)
