"""What each case kind measures: `measure_<kind>(case, config, timer, seed) -> metrics`, used by
the bench module, the CLI and asv alike. Timing is core.timing's Timer (pytest-benchmark under
pytest, plain rounds elsewhere); side-by-side comparisons run in rotated rounds.

    python -c "from benchlab.core import Timer; from benchlab.lm_timing import *; \
        from benchlab.lm_timing.measure import measure_sweep; \
        print(measure_sweep(sweep_cases(CONFIGS['tiny'])[0], CONFIGS['tiny'], Timer()))"
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from tqdm.auto import tqdm

from benchlab.core.stats import bootstrap_ci, describe, paired_ratio, paired_ratio_ci
from benchlab.core.timing import peak_memory, time_fn

from . import attn_cases, builders, pair_cases, peak_cases, sweep_cases, variant_tag, warmup_cases
from .model import ATTENTION, DIMS, ModelConfig, size_config


class OOM(Exception):
    """A case that does not fit; its reason becomes the record (status "oom")."""


def guard(fn, device, where: str):
    """fn(), or raise OOM with a reason when it ran out of memory (other errors propagate)."""
    try:
        return fn()
    except Exception as e:
        if not builders.is_oom(e):
            raise
        builders.release(device)
        raise OOM(f"OOM ({type(e).__name__}) while {where}") from None


def build(device, size, context, mode, precision, *, seed=0, **kw) -> builders.Prepared:
    """builders.prepare after the CPU memory estimate; OOM when either says it will not fit."""
    reason = builders.oom_reason(size, context, mode, precision, device=device,
                                 attn=kw.get("attn", "sdpa"), batch=kw.get("batch", 4),
                                 vocab=kw.get("vocab", 10_000))
    if reason is not None:
        raise OOM(reason)
    return guard(lambda: builders.prepare(size, context, mode, precision, device=device,
                                          seed=seed, **kw), device, "building")


def time_steps(prep: builders.Prepared, timer, *, warmups: int, trials: int,
               steps: int = 1) -> dict:
    """`warmups` single steps timed one by one (so the first step's cost shows; skipped when
    timing is off), then `trials` timed trials of `steps` steps each through the timer.
    Seconds: warm (per warm-up step), trials (per trial), per_step (trial / steps)."""
    warm = time_fn(prep.step, prep.device, warmup=0, trials=warmups) if timer.enabled else []
    out, times = [], []
    # a paper size's rounds (or a compiled first step) take minutes on a CPU: the bar counts
    # finished rounds, updated between them (untimed), shown only once a step is slow
    bar = tqdm(total=trials, desc=f"{prep.mode} {prep.precision} ctx{prep.context}",
               unit="round", delay=10, leave=False)

    def trial():
        for _ in range(steps):
            out.append(prep.step())

    def between():
        bar.update(len(out) // steps - bar.n)

    try:
        guard(lambda: timer.measure(trial, warmup=0, rounds=trials, times=times,
                                    setup=between), prep.device, "running")
    finally:
        bar.close()
    return {"warm": warm, "trials": times, "per_step": [t / steps for t in times],
            "loss": float(out[-1])}


def step_metrics(prep: builders.Prepared, timed: dict, by: str = "mean") -> dict:
    """The summary (per step), first step and warm-up times, peak memory and MFU (from the `by`
    time, builders.summarize) of one case."""
    mem = peak_memory(prep.step, prep.device)
    peak = builders.matmul_peak(prep.device, prep.precision)
    m = builders.summarize(timed["per_step"], prep, peak_flops=peak, peak_bytes=mem, by=by)
    first = timed["warm"][0] if timed["warm"] else timed["per_step"][0]
    return {**m, "first_step_ms": 1000 * first,
            "warmup_times_ms": [1000 * t for t in timed["warm"]]}


def dims(config, size: str):
    """The ModelConfig of `size` in this config (config.sizes: the smoke budget's are cut to one
    layer), else the size name itself (builders resolve it from model.SIZES)."""
    return config.sizes.get(size, size)


def measure_sweep(case, config, timer, seed: int = 0) -> dict:
    """Every variant of one size and context timed side by side (Timer.side_by_side: each round
    runs each variant once, the order rotated every round). Per variant, under "<tag>.<metric>"
    (variant_tag): its rounds' times, median, and rates and MFU from the median (step_metrics),
    its first step and peak memory; a variant that does not fit is "<tag>.status": "oom" and
    the others run. "loss": the first step's, of the first variant on the fresh model."""
    size, shared, preps, out = dims(config, case.size), {}, {}, {"status": "ok"}
    for mode, prec, attn, comp in case.variants:
        tag = variant_tag(mode, prec, attn, comp)
        try:
            preps[tag] = build(timer.device, size, case.context, mode, prec, seed=seed,
                               attn=attn, batch=case.batch, vocab=case.vocab, compile=comp,
                               compile_backend=config.compile_backend, shared=shared)
        except OOM as e:
            out |= {f"{tag}.status": "oom", f"{tag}.reason": str(e)}
    losses = {tag: [] for tag in preps}
    fns = {tag: (lambda p=p, kept=losses[tag]: kept.append(p.step())) for tag, p in preps.items()}
    warm = {}
    for tag, fn in list(fns.items()):  # warm-up steps timed one by one: the first step shows
        try:
            warm[tag] = guard(lambda fn=fn: time_fn(fn, timer.device, warmup=0,
                                                    trials=case.warmup),
                              timer.device, "warming up") if timer.enabled else []
        except OOM as e:
            out |= {f"{tag}.status": "oom", f"{tag}.reason": str(e)}
            del fns[tag], preps[tag]
    if not fns:
        return {**out, "status": "oom", "reason": "no variant fits"}
    try:
        t = guard(lambda: timer.side_by_side(fns, warmup=0, rounds=case.rounds), timer.device,
                  "running")
    except OOM as e:
        return {**out, "status": "oom", "reason": str(e)}
    for tag, prep in preps.items():
        assert torch.isfinite(losses[tag][-1]), f"{tag}: loss is {losses[tag][-1]}"
        m = step_metrics(prep, {"warm": warm[tag], "per_step": t[tag]}, by="median")
        out["num_params"] = m.pop("num_params")
        out |= {f"{tag}.{k}": v for k, v in m.items()}
    first = next(iter(preps))
    return {**out, "loss": float(losses[first][0]), "rounds_timed": len(t[first])}


def ratio_ci(name: str, a, b) -> dict:
    """{name_lo, name_hi}: 95% bootstrap interval of the median paired ratio a_i / b_i; empty
    with fewer than 3 rounds (records hold no NaN)."""
    if len(a) < 3:
        return {}
    lo, hi = paired_ratio_ci(a, b)
    return {f"{name}_lo": float(lo), f"{name}_hi": float(hi)}


def measure_pair(case, config, timer, seed: int = 0) -> dict:
    common = dict(seed=seed, batch=case.batch, vocab=case.vocab)
    try:
        size = dims(config, case.size)
        a = build(timer.device, size, case.context, case.mode, case.a_precision,
                  impl=case.a_impl, **common)
        b = build(timer.device, size, case.context, case.mode, case.b_precision,
                  impl=case.b_impl, **common)
        assert a.num_params == sum(p.numel() for p in b.model.parameters()), "sizes differ"
        t = guard(lambda: timer.side_by_side({"a": a.step, "b": b.step}, warmup=case.warmup,
                                             rounds=case.rounds), timer.device, "running")
    except OOM as e:
        return {"status": "oom", "reason": str(e)}
    ta, tb = t["a"], t["b"]
    ms_a, ms_b = [1000 * x for x in ta], [1000 * x for x in tb]
    da, db = describe(ms_a), describe(ms_b)
    return {"num_params": a.num_params, "flops": a.flops, "a_median_ms": da["median"],
            "b_median_ms": db["median"], "a_mean_ms": da["mean"], "b_mean_ms": db["mean"],
            "ratio": paired_ratio(ta, tb), **ratio_ci("ratio", ta, tb),
            "ratio_of_medians": da["median"] / db["median"], "ratio_min": da["min"] / db["min"],
            "a_trial_times_ms": ms_a, "b_trial_times_ms": ms_b, "rounds_timed": len(ta),
            "status": "ok"}


def measure_attn(case, config, timer, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    shape = (case.batch, case.heads, case.context, case.head_dim)
    q, k, v = (torch.randn(shape, generator=g).to(timer.device, builders.DTYPES[case.precision])
               for _ in range(3))
    fn, times = ATTENTION[case.impl], []
    try:
        guard(lambda: timer.measure(lambda: fn(q, k, v), warmup=1, rounds=case.rounds,
                                    times=times), timer.device, "running")
    except OOM as e:
        return {"status": "oom", "reason": str(e)}
    other = ATTENTION["einsum" if case.impl == "sdpa" else "sdpa"]
    diff = (fn(q, k, v).float() - other(q, k, v).float()).abs().max().item()
    tol = 1e-4 if case.precision == "fp32" else 5e-2
    assert diff < tol, f"sdpa and einsum attention differ by {diff}"
    d = describe([1000 * t for t in times])
    return {"status": "ok", "mean_ms": d["mean"], "std_ms": d["std"], "max_abs_diff": diff,
            "flops": 4 * case.batch * case.context**2 * case.heads * case.head_dim}


def measure_peak(case, config, timer, seed: int = 0) -> dict:
    n = builders.peak_n(timer.device, case.precision)
    a, b = (torch.randn(n, n, device=timer.device, dtype=builders.DTYPES[case.precision])
            for _ in range(2))
    timer.measure(lambda: a @ b, warmup=1, rounds=3)
    return {"peak_tflops": builders.matmul_peak(timer.device, case.precision) / 1e12, "n": n}


def run_fresh(case, warmups: int, device: str, seed: int, size=None) -> dict:
    """`benchlab lm-timing run` of the warm-up case in a fresh process (a cold first step);
    `size`: the ModelConfig whose dimensions it runs (default: the case's size's own)."""
    size = size if isinstance(size, ModelConfig) else size_config(case.size)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        cmd = [sys.executable, "-m", "benchlab.cli", "lm-timing", "run", "--model_size",
               case.size, "--vocab", str(case.vocab), "--context_length", str(case.context),
               "--batch_size", str(case.batch), "--num_warmups", str(warmups), "--num_trials",
               str(case.trials), "--mode", case.mode, "--device", device, "--seed", str(seed),
               "--output", str(out)] + [f"--{k}={getattr(size, k)}" for k in DIMS]
        n = str(torch.get_num_threads())  # the session's --bench-threads, in the child too
        env = {**os.environ, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(out.read_text())


def measure_warmup(case, config, timer, seed: int = 0) -> dict:
    """The seed's warm-up study: each count in a fresh process, `repeats` rounds with the order
    of the counts rotated every round; per count the mean of the timed steps' means with a 95%
    bootstrap interval over rounds (left out with < 3 rounds), and the cold first step."""
    counts = list(case.counts)
    res = {w: [] for w in counts}
    order = [w for r in range(case.repeats)
             for w in counts[r % len(counts):] + counts[:r % len(counts)]]

    def study():  # one fresh process per run: seconds each, minutes at the paper's repeats
        for w in tqdm(order, desc=f"warm-up study {case.id}", unit="process", leave=False):
            res[w].append(run_fresh(case, w, timer.device, seed, dims(config, case.size)))

    timer.measure(study, warmup=0, rounds=1)
    out = {"status": "ok", "fresh_process": True}
    for w in counts:
        ok = [x for x in res[w] if x["status"] == "ok"]
        if not ok:
            out[f"w{w}_status"] = "oom"
            continue
        means = [x["mean_step_time_ms"] for x in ok]
        if len(means) >= 3:
            lo, hi = bootstrap_ci(means, seed=0)
            out |= {f"w{w}_lo_ms": float(lo), f"w{w}_hi_ms": float(hi)}
        out |= {f"w{w}_mean_ms": sum(means) / len(means), f"w{w}_means_ms": means,
                f"w{w}_first_step_ms": describe([x["first_step_ms"] for x in ok])["median"],
                "num_params": ok[0]["num_params"]}
    return out


# kind -> (its cases at a scale, what one case measures): what core.session.Run reads
KINDS = {
    "peak": (peak_cases, measure_peak),
    "sweep": (sweep_cases, measure_sweep),
    "pair": (pair_cases, measure_pair),
    "warmup": (warmup_cases, measure_warmup),
    "attn": (attn_cases, measure_attn),
}
