"""Long Exposure end-to-end benchmarks: PEFT step time and memory, dense (eager, SDPA) vs Long
Exposure, ablations, predictor loss curves, model scaling. Figures: see long_exposure.report.

    pytest bench/test_long_exposure.py --bench-scale tiny --bench-store /tmp/le/store.jsonl \
        --bench-reports /tmp/le/reports --benchmark-json /tmp/le/out.json

Every timed comparison is side by side in one run: each pytest-benchmark round runs the LE step
and the dense steps once each, in an order rotated by round (core.measure_side_by_side).
"""

from statistics import median

import pytest

from benchlab.core import measure, measure_side_by_side, threads
from benchlab.long_exposure import finetune as ft
from benchlab.long_exposure import workload as wl

pytestmark = pytest.mark.experiment("long_exposure")


@pytest.fixture(autouse=True)
def _threads(config, record):
    """The scale's torch thread count for the whole case (recorded)."""
    with threads(config.threads) as n:
        record(threads=n)
        yield


def _interleaved(benchmark, device, le, dense: dict, warmup, rounds) -> dict:
    """The LE step and every dense trainer's step side by side, once each per benchmark round in
    a rotated order (core.measure_side_by_side) -> wl.speedups of the paired rounds (t_<name>
    medians, speedup_<name> vs le)."""
    fns = {"le": le.step, **{k: t.step for k, t in dense.items()}}
    return wl.speedups(measure_side_by_side(benchmark, fns, device, warmup=warmup, rounds=rounds))


def _densities(stats) -> dict:
    """The densities an LE run ran at: attention kept / causal blocks, document blocks / causal
    blocks (the free structure), MLP kept neuron blocks, and whether it kept everything."""
    return {"density_attn": stats.density("attn"), "density_doc": stats.density("doc"),
            "density_mlp": stats.density("mlp"), "keeps_everything": stats.keeps_everything()}


def _speed(config, case, benchmark, device, record, method):
    le = wl.trainer(config, case.model, method, case.seq_len, mode="le", part=case.part,
                    device=device)
    dense = {"sdpa": wl.trainer(config, case.model, method, case.seq_len, mode="sdpa",
                                device=device)}
    if case.kind != "ablation":
        dense["eager"] = wl.trainer(config, case.model, method, case.seq_len, mode="eager",
                                    device=device)
    t = _interleaved(benchmark, device, le, dense, config.warmup, config.rounds)
    record(**t, **_densities(le.stats), tokens=int(le.batch.numel()))
    return t


@pytest.mark.cases("end2end_cases")
def test_end2end(benchmark, case, config, device, seed, record):
    """exp-overall-end2end: one training step per PEFT method, LE vs dense SDPA and eager."""
    _speed(config, case, benchmark, device, record, case.method)


@pytest.mark.cases("scale_cases")
def test_scale(benchmark, case, config, device, seed, record):
    """exp-scale-model: LoRA step, LE vs dense, across model sizes."""
    _speed(config, case, benchmark, device, record, "lora")


@pytest.mark.cases("ablation_cases")
def test_ablation(benchmark, case, config, device, seed, record):
    """exp-ablation-{attn,mlp}-time: LoRA step with only attention (or only the MLP) sparse."""
    _speed(config, case, benchmark, device, record, "lora")


@pytest.mark.cases("memory_cases")
def test_memory(benchmark, case, config, device, seed, record):
    """exp-overall-memory-*: weights, gradients + AdamW moments, saved activations of one step,
    dense (SDPA and eager attention) vs LE. The whole study runs once under pytest-benchmark,
    which also carries its record into --benchmark-json for `benchlab report`."""

    def study():
        out = {}
        for mode, prefix in (("sdpa", "dense"), ("eager", "eager"), ("le", "le")):
            t = wl.trainer(config, case.model, case.method, case.seq_len, mode=mode, device=device)
            mem = ft.step_memory(t.model, t.batch)
            out.update({f"{prefix}_{k}": v for k, v in mem.items()})
        return out

    out = benchmark.pedantic(study, rounds=1, iterations=1)
    record(**out, memory_ratio=out["le_total"] / out["dense_total"],
           memory_ratio_eager=out["le_total"] / out["eager_total"],
           activation_ratio=out["le_activations"] / out["dense_activations"],
           activation_ratio_eager=out["le_activations"] / out["eager_activations"])


@pytest.mark.cases("breakdown_cases")
def test_breakdown(benchmark, case, config, device, seed, record):
    """exp-ablation-breakdown: forward / backward / predictor seconds of a LoRA step."""
    le = wl.trainer(config, case.model, "lora", case.seq_len, mode="le", device=device)
    dense = wl.trainer(config, case.model, "lora", case.seq_len, mode="sdpa", device=device)
    parts = {"le": [], "dense": []}

    def run_le():
        parts["le"].append(le.timed_step())

    def setup():
        parts["dense"].append(dense.timed_step())

    measure(benchmark, run_le, device, warmup=config.warmup, rounds=config.rounds, setup=setup)
    out = {}
    for mode, rows in parts.items():
        for key in ("forward", "backward", "predictor"):
            out[f"{mode}_{key}"] = median([r[key] for r in rows[-config.rounds:]])
    record(**out, predictor_share=out["le_predictor"] / sum(
        out[f"le_{k}"] for k in ("forward", "backward", "predictor")))


@pytest.mark.cases("model_step_cases")
def test_model_step(benchmark, case, config, device, seed, record):
    """The issue's end-to-end goal: LoRA step at L=1024 on the 125m-shaped model (small scale)
    on packed rows, attention inside documents everywhere: LE vs dense SDPA with the document
    mask (goal >= 1.5x), per-document SDPA (speedup_sdpa_docs: LE's gain from shadowy sparsity
    alone) and eager, and step memory vs dense SDPA; LE always sparse, and LE dispatched
    (dispatch_*: layer parts above the break-even densities measured first in this case run
    dense). Masks are fixed before timing: the exposer's true masks of the batch
    (masks=exposed) or random blocks at a "synthetic density" (masks=synthetic)."""
    be = wl.break_even(config, case.model, case.seq_len, case.init, device)
    ts = wl.model_step_trainers(config, case.model, case.seq_len, case.masks, case.density,
                                case.init, device, dense_above=be)
    mem = {k: ft.step_memory(t.model, t.batch)["total"] for k, t in ts.items()}
    times = measure_side_by_side(benchmark, {k: t.step for k, t in ts.items()}, device,
                                 warmup=1, rounds=config.step_rounds)
    dense = {k: times[k] for k in ("sdpa", "sdpa_docs", "eager")}
    dispatch = wl.speedups({**dense, "le": times["le_dispatch"]})
    le, ld = ts["le"], ts["le_dispatch"]
    record(**wl.speedups({**dense, "le": times["le"]}),
           **{f"dispatch_{k}": v for k, v in dispatch.items() if k.startswith("speedup")},
           t_le_dispatch=dispatch["t_le"], dispatch_dense_runs=ld.stats.dense_runs,
           break_even_attn=be["attn"], break_even_mlp=be["mlp"],
           memory_ratio=mem["le"] / mem["sdpa"], memory_ratio_eager=mem["le"] / mem["eager"],
           memory_ratio_sdpa_docs=mem["le"] / mem["sdpa_docs"],
           dispatch_memory_ratio=mem["le_dispatch"] / mem["sdpa"],
           le_total=mem["le"], dense_total=mem["sdpa"], eager_total=mem["eager"],
           **_densities(le.stats), layer_density_attn=le.stats.layer_densities("attn"),
           layer_density_mlp=le.stats.layer_densities("mlp"), init=case.init, masks=case.masks)


@pytest.fixture(scope="module")
def curves():
    return {}


def _curve(cache, config, model, masks, densities=None):
    if (model, masks) not in cache:
        cache[(model, masks)] = wl.curve(config, model, masks, densities)
    return cache[(model, masks)]


@pytest.mark.cases("predictor_cases")
def test_predictor_curve(benchmark, case, config, device, seed, record, curves):
    """exp-ablation-predictor: LoRA loss curves with dense, predicted and random masks (random
    at the predicted masks' per-layer density); each curve is one timed round."""
    dens = None
    if case.masks == "random":
        pred = _curve(curves, config, case.model, "predicted")
        dens = (pred["layer_density_attn"], pred["layer_density_mlp"])
    out = measure(benchmark, lambda: wl.curve(config, case.model, case.masks, dens), device,
                  warmup=0, rounds=1)
    curves[(case.model, case.masks)] = out
    dense = _curve(curves, config, case.model, "dense")["losses"]
    gaps = [abs(a - b) / b for a, b in zip(out["losses"], dense, strict=True)]
    record(losses=out["losses"], final_loss=out["losses"][-1], max_gap_to_dense=max(gaps),
           mean_gap_to_dense=sum(gaps) / len(gaps),
           density=0.5 * (out.get("density_attn", 1.0) + out.get("density_mlp", 1.0)),
           density_attn=out.get("density_attn", 1.0), density_mlp=out.get("density_mlp", 1.0))
