"""Transformer timing benchmarks: size x context x mode x precision, peer and bf16 ratios,
the warm-up study, attention kernels and the matmul peak behind MFU.

    pytest bench/test_lm_timing.py --bench-scale=tiny --bench-reports /tmp/lmt/reports
    pytest bench/test_lm_timing.py --bench-scale=paper --bench-device=cuda   # the full GPU table

Every step case records num_params, model FLOPs, tokens/s, MFU (against the same run's matmul
peak of the same dtype), peak memory and all trial times. A case that does not fit records
status "oom" instead of crashing. Pair cases time two steps side by side (each benchmark round
runs a and b back to back, the order flipped every round: core.measure_side_by_side) and record
ratio = the median over rounds of a / b (slow drifts of a shared machine cancel in each pair),
with the ratio of the medians and of the minimums beside it.
"""

import json
import subprocess
import sys

import pytest
import torch

from benchlab.core import measure, measure_side_by_side
from benchlab.core.stats import describe, paired_ratio
from benchlab.lm_timing import run as R
from benchlab.lm_timing.model import ATTENTION

pytestmark = pytest.mark.experiment("lm_timing")


def _prepare(record, device, seed, size, context, mode, precision, **kw):
    """R.prepare, or None after recording status "oom" when the case cannot fit."""
    reason = R.oom_reason(size, context, mode, precision, device=device,
                          attn=kw.get("attn", "sdpa"), batch=kw["batch"], vocab=kw["vocab"])
    if reason is None:
        try:
            return R.prepare(size, context, mode, precision, device=device, seed=seed, **kw)
        except Exception as e:
            if not R.is_oom(e):
                raise
            reason = f"OOM ({type(e).__name__}) while building"
    R.release(device)
    record(status="oom", reason=reason)
    return None


def _timed(record, fn):
    """fn() or None after recording status "oom" when it ran out of memory."""
    try:
        fn()
        return True
    except Exception as e:
        if not R.is_oom(e):
            raise
        R.release("cuda" if torch.cuda.is_available() else "cpu")
        record(status="oom", reason=f"OOM ({type(e).__name__}) while running")
        return None


@pytest.mark.cases("peak_cases")
def test_matmul_peak(benchmark, case, device, record):
    n = 8192 if device == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=R.DTYPES[case.precision])
    b = torch.randn(n, n, device=device, dtype=R.DTYPES[case.precision])
    measure(benchmark, lambda: a @ b, device, warmup=1, rounds=3)
    record(peak_tflops=R.matmul_peak(device, case.precision) / 1e12, n=n)


@pytest.mark.cases("step_cases")
def test_step(benchmark, case, config, device, seed, record):
    prep = _prepare(record, device, seed, case.size, case.context, case.mode, case.precision,
                    attn=case.attn, batch=case.batch, vocab=case.vocab, compile=case.compile,
                    compile_backend=config.compile_backend)
    if prep is None:
        return
    times, out = [], []
    step = R.recording(prep.step, device, times)
    if not _timed(record, lambda: out.append(measure(benchmark, step, device,
                                                     warmup=case.warmup, rounds=case.rounds))):
        return
    loss = float(out[0])
    assert torch.isfinite(torch.tensor(loss)), f"loss is {loss}"
    mem = R.peak_memory(prep.step, device)
    trials = times[case.warmup:] or times
    record(**R.summarize(trials, prep, peak_flops=R.matmul_peak(device, case.precision),
                         peak_bytes=mem),
           first_step_ms=1000 * times[0], warmup_times_ms=[1000 * t for t in times[:case.warmup]],
           loss=loss, rounds_timed=len(trials))


@pytest.mark.cases("pair_cases")
def test_pair(benchmark, case, device, seed, record):
    common = dict(batch=case.batch, vocab=case.vocab)
    a = _prepare(record, device, seed, case.size, case.context, case.mode, case.a_precision,
                 impl=case.a_impl, **common)
    b = a and _prepare(record, device, seed, case.size, case.context, case.mode,
                       case.b_precision, impl=case.b_impl, **common)
    if a is None or b is None:
        return
    assert a.num_params == sum(p.numel() for p in b.model.parameters()), "sizes differ"
    t = {}
    if not _timed(record, lambda: t.update(measure_side_by_side(
            benchmark, {"a": a.step, "b": b.step}, device, warmup=case.warmup,
            rounds=case.rounds))):
        return
    ta, tb = t["a"], t["b"]
    da, db = describe([1000 * x for x in ta]), describe([1000 * x for x in tb])
    record(num_params=a.num_params, flops=a.flops, a_median_ms=da["median"],
           b_median_ms=db["median"], a_mean_ms=da["mean"], b_mean_ms=db["mean"],
           ratio=paired_ratio(ta, tb), ratio_of_medians=da["median"] / db["median"],
           ratio_min=da["min"] / db["min"], a_trial_times_ms=[1000 * x for x in ta],
           b_trial_times_ms=[1000 * x for x in tb], rounds_timed=len(ta), status="ok")


@pytest.mark.cases("warmup_cases")
def test_warmup(benchmark, case, device, seed, record, tmp_path):
    """The seed's warm-up study: each count in a fresh process, so the first step is cold.
    pytest-benchmark times the whole process once (start-up included), which also puts the
    record into --benchmark-json, so `benchlab report out.json` sees the study too."""
    out = tmp_path / "run.json"
    cmd = [sys.executable, "-m", "benchlab.cli", "lm-timing", "run", "--model_size", case.size,
           "--vocab", str(case.vocab), "--context_length", str(case.context), "--batch_size",
           str(case.batch), "--num_warmups", str(case.warmups), "--num_trials", str(case.trials),
           "--mode", case.mode, "--device", device, "--seed", str(seed), "--output", str(out)]
    proc = benchmark.pedantic(subprocess.run, args=(cmd,), rounds=1, iterations=1,
                              kwargs={"capture_output": True, "text": True, "timeout": 1800})
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    if res["status"] != "ok":
        record(status=res["status"], reason=res["reason"], warmups=case.warmups)
        return
    d = describe(res["trial_times_ms"])
    record(status="ok", warmups=case.warmups, first_step_ms=res["first_step_ms"],
           mean_ms=d["mean"], std_ms=d["std"], median_ms=d["median"],
           trial_times_ms=res["trial_times_ms"], warmup_times_ms=res["warmup_times_ms"],
           num_params=res["num_params"], fresh_process=True)


@pytest.mark.cases("attn_cases")
def test_attention(benchmark, case, device, seed, record):
    g = torch.Generator().manual_seed(seed)
    shape = (case.batch, case.heads, case.context, case.head_dim)
    q, k, v = (torch.randn(shape, generator=g).to(device, R.DTYPES[case.precision])
               for _ in range(3))
    fn, times = ATTENTION[case.impl], []
    timed = R.recording(lambda: fn(q, k, v), device, times)
    if not _timed(record, lambda: measure(benchmark, timed, device, warmup=1,
                                          rounds=case.rounds)):
        return
    other = ATTENTION["einsum" if case.impl == "sdpa" else "sdpa"]
    diff = (fn(q, k, v).float() - other(q, k, v).float()).abs().max().item()
    tol = 1e-4 if case.precision == "fp32" else 5e-2
    assert diff < tol, f"sdpa and einsum attention differ by {diff}"
    d = describe([1000 * t for t in (times[1:] or times)])
    record(status="ok", mean_ms=d["mean"], std_ms=d["std"], max_abs_diff=diff,
           flops=4 * case.batch * case.context**2 * case.heads * case.head_dim)
