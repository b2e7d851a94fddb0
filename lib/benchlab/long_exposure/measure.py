"""What each Long Exposure case kind measures: `measure_<kind>(case, config, timer[, seed]) ->
metrics`, for the bench modules, the CLI and asv alike. The implementations of one case run side
by side in rotated rounds; speedups are medians of the paired rounds (core.stats.paired_ratio).

    python -c "from benchlab.core import Timer; from benchlab.long_exposure import *; \
from benchlab.long_exposure.measure import measure_end2end; \
print(measure_end2end(end2end_cases(CONFIGS['tiny'])[1], CONFIGS['tiny'], Timer()))"
"""

import functools

import torch

from benchlab.core import interleave, threads
from benchlab.core.stats import medians, paired_ratio
from benchlab.core.timing import forward_backward, peak_memory

from . import (
    ablation_cases,
    breakdown_cases,
    end2end_cases,
    exposer,
    finetune,
    gpt2_cases,
    memory_cases,
    mlp_grain,
    model_step_cases,
    opcases,
    ops_attn,
    ops_mlp,
    predictor_cases,
    predictors,
    scale_cases,
    setups,
)
from .attn_study import doc_attn_cases, measure_doc_attn
from .kernels import measure_breakdown, measure_kernel
from .opcases import corpus_rows
from .patterns import PatternConfig, pattern_study


def measure_end2end(case, config, timer) -> dict:
    """exp-overall-end2end (also scale and ablation): a training step, LE (sparse `case.part`)
    vs the dense modes (ablations: no causal SDPA and eager) -> setups.speedups, t_rounds_<name>
    (seconds per round), densities. A dense-only method (setups.runs) has no LE numbers."""
    with threads(config.threads) as n:
        modes = ("le", "sdpa_docs", "sdpa") + (() if case.kind == "ablation" else
                                                ("sdpa_causal", "eager"))
        ts = {m: setups.trainer(config, case.model, case.method, case.seq_len, mode=m,
                                part=case.part, device=timer.device)
              for m in modes if setups.runs(case.method, m)}
        times = timer.side_by_side({k: v.step for k, v in ts.items()}, warmup=config.warmup,
                                   rounds=config.rounds)
        dens = setups.densities(ts["le"].stats) if "le" in ts else {}
        return {"threads": n, **setups.speedups(times), **dens,
                **{f"t_rounds_{k}": [float(x) for x in v] for k, v in times.items()},
                "tokens": int(ts["sdpa"].batch.numel())}


def measure_gpt2(case, config, timer) -> dict:
    """exp-scale-gpt2 (Fig 13): measure_end2end (the GELU MLP dense: density_mlp 1.0) plus
    setups.mlp_activity, how sparse that dense MLP is."""
    return {**measure_end2end(case, config, timer),
            **setups.mlp_activity(config, case.model, case.seq_len)}


MEMORY_MODES = ("dense", "eager", "le", "oracle")  # record prefixes: sdpa, eager, LE, LE-optimal


def measure_memory(case, config, timer) -> dict:
    """exp-overall-memory-* (Fig 8): one step's memory by finetune.step_memory (CUDA: also the
    allocator's `<mode>_cuda_peak`), dense (SDPA, eager) vs LE with predicted and with the
    exposer's oracle masks (the artifact's "LE-optimal"), and the LE densities."""
    data = setups.batch(config, case.model, case.seq_len)

    def run(prefix):
        src, mode = None, {"dense": "sdpa", "oracle": "le"}.get(prefix, prefix)
        if prefix == "oracle":
            src = setups.exposed_source(setups.base_model(case.model), data, config.ops.mass,
                                        config.ops.mlp_rel)
        t = setups.trainer(config, case.model, case.method, case.seq_len, mode=mode, data=data,
                           source=src, device=timer.device)
        out = {f"{prefix}_{k}": v for k, v in finetune.step_memory(t.model, t.batch).items()}
        if t.stats is not None:
            out.update({f"{prefix}_density_{p}": t.stats.density(p) for p in ("attn", "mlp")})
        if timer.device.startswith("cuda"):
            out[f"{prefix}_cuda_peak"] = peak_memory(t.step, timer.device)
        return out

    def study():
        return {k: v for prefix in MEMORY_MODES for k, v in run(prefix).items()}

    with threads(config.threads) as n:
        out = timer.measure(study, warmup=0, rounds=1)
    return {"threads": n, **out, **{
        f"{name}_ratio{tag}": out[f"{a}_{part}"] / out[f"{b}_{part}"]
        for name, part in (("memory", "total"), ("activation", "activations"))
        for tag, a, b in (("", "le", "dense"), ("_eager", "le", "eager"),
                          ("_oracle", "oracle", "dense"))}}


def model_step_run(case, config, timer):
    """(break-even densities, trainers, step memory, step seconds) of a model_step case (the
    break-even: 1 round under --benchmark-disable)."""
    be = setups.break_even(config, case.model, case.seq_len, case.init, timer.device,
                           rounds=config.step_rounds if timer.enabled else 1)
    ts = setups.model_step_trainers(config, case.model, case.seq_len, case.masks, case.density,
                                    case.init, timer.device, dense_above=be)
    mem = {k: finetune.step_memory(t.model, t.batch)["total"] for k, t in ts.items()
           if k != "le_flex"}
    times = timer.side_by_side({k: t.step for k, t in ts.items()}, warmup=1,
                               rounds=config.step_rounds)
    return be, ts, mem, times


STEP_DENSE = ("sdpa_docs", "sdpa_causal", "sdpa", "eager")  # the model step's dense baselines


def flex_speedups(times: dict) -> dict:
    """CUDA: flex_speedup_<dense> and t_le_flex of "le_flex" ({} without it)."""
    if "le_flex" not in times:
        return {}
    fs = setups.speedups({**{k: times[k] for k in STEP_DENSE}, "le": times["le_flex"]})
    return {**{f"flex_{k}": v for k, v in fs.items() if k.startswith("speedup")},
            "t_le_flex": fs["t_le"]}


def measure_model_step(case, config, timer) -> dict:
    """LoRA step (setups.model_step_trainers): LE vs the dense modes (speedup_sdpa_docs: the
    gain from shadowy sparsity alone), and step memory; LE always sparse and dispatched
    (dispatch_*: parts above the break-even densities run dense)."""
    with threads(config.threads) as n:
        be, ts, mem, times = model_step_run(case, config, timer)
    return model_step_metrics(case, n, be, ts, mem, times)


def model_step_metrics(case, n: int, be: dict, ts: dict, mem: dict, times: dict) -> dict:
    """A model_step case's metrics from model_step_run's results at `n` threads."""
    dense = {k: times[k] for k in STEP_DENSE}
    dispatch = setups.speedups({**dense, "le": times["le_dispatch"]})
    le, ld = ts["le"], ts["le_dispatch"]
    return {"threads": n, **setups.speedups({**dense, "le": times["le"]}),
            **{f"dispatch_{k}": v for k, v in dispatch.items() if k.startswith("speedup")},
            "t_le_dispatch": dispatch["t_le"], **flex_speedups(times),
            "dispatch_dense_runs": ld.stats.dense_runs,
            "break_even_attn": be["attn"], "break_even_mlp": be["mlp"],
            "memory_ratio": mem["le"] / mem["sdpa"], "memory_ratio_eager": mem["le"] / mem["eager"],
            "memory_ratio_sdpa_docs": mem["le"] / mem["sdpa_docs"],
            "dispatch_memory_ratio": mem["le_dispatch"] / mem["sdpa"],
            "le_total": mem["le"], "dense_total": mem["sdpa"], "eager_total": mem["eager"],
            **{f"t_rounds_{k}": [float(x) for x in v] for k, v in times.items()},
            **setups.densities(le.stats, ("attn", "mlp")), "init": case.init,
            "masks": case.masks}


_CURVES: dict = {}  # (config, model, masks, reorder) -> setups.curve, per process


def _curve(config, model: str, masks: str, reorder: bool = False) -> dict:
    key = (config, model, masks, reorder)
    if key not in _CURVES:
        _CURVES[key] = setups.curve(config, model, masks, reorder=reorder)
    return _CURVES[key]


def measure_predictor(case, config, timer) -> dict:
    """exp-ablation-predictor: a LoRA loss curve (setups.curve), one timed round, its gaps to
    the dense curve and its densities (dense: 1.0 and keeps_everything)."""
    reorder = case.reorder
    with threads(config.threads) as n:
        out = timer.measure(lambda: setups.curve(config, case.model, case.masks, reorder=reorder),
                            warmup=0, rounds=1)
        _CURVES[(config, case.model, case.masks, reorder)] = out
        dense = _curve(config, case.model, "dense")["losses"]
    gaps = [abs(a - b) / b for a, b in zip(out["losses"], dense, strict=True)]
    d_attn, d_mlp = out.get("density_attn", 1.0), out.get("density_mlp", 1.0)
    return {"threads": n, "losses": out["losses"], "final_loss": out["losses"][-1],
            "max_gap_to_dense": max(gaps), "mean_gap_to_dense": sum(gaps) / len(gaps),
            "density": 0.5 * (d_attn + d_mlp), "density_attn": d_attn, "density_mlp": d_mlp,
            "density_doc": out.get("density_doc", 1.0),
            "keeps_everything": out.get("keeps_everything", True)}


def measure_op_mlp(case, config, timer, seed: int = 0) -> dict:
    """exp-ablation-operator-mlp: block-sparse MLP forward + input grad vs dense; ideal is
    1 / density, efficiency speedup / ideal."""
    c, ops, device = case, config.ops, timer.device
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(c.tokens, c.d_model, generator=gen).to(device).requires_grad_(True)
    w1 = (torch.randn(c.ffn_dim, c.d_model, generator=gen) * c.d_model ** -0.5).to(device)
    w2 = (torch.randn(c.d_model, c.ffn_dim, generator=gen) * c.ffn_dim ** -0.5).to(device)
    b1, b2 = torch.zeros(c.ffn_dim, device=device), torch.zeros(c.d_model, device=device)
    gy = torch.randn(c.tokens, c.d_model, generator=gen).to(device)
    keep = ops_mlp.random_keep(c.ffn_dim // c.block, c.sparsity, generator=gen).to(device)
    density = float(keep.float().mean())
    dense = forward_backward(lambda: ops_mlp.dense_mlp(x, w1, b1, w2, b2), x, gy)
    sparse = forward_backward(
        lambda: ops_mlp.block_sparse_mlp(x, w1, b1, w2, b2, keep, c.block), x, gy)
    with threads(ops.threads) as n:
        ts = interleave({"dense": dense, "sparse": sparse}, device, warmup=ops.warmup,
                        rounds=ops.rounds)
        timer.measure(sparse, warmup=0, rounds=max(1, ops.rounds // 2))
    t, ideal, speedup = medians(ts), 1.0 / density, paired_ratio(ts["dense"], ts["sparse"])
    return {"t_dense": t["dense"], "t_sparse": t["sparse"], "speedup": speedup, "ideal": ideal,
            "efficiency": speedup / ideal, "density": density, "threads": n}


def measure_op_attn(case, config, timer, seed: int = 0) -> dict:
    """exp-ablation-operator-attn: block-sparse attention forward + backward vs SDPA and eager,
    and forward only vs SDPA (*_fwd); the operator runs at full masks too (shortcut=False)."""
    c, ops = case, config.ops
    gen = torch.Generator().manual_seed(seed)
    shape = (c.batch, c.heads, c.tokens, c.head_dim)
    q, k, v = (torch.randn(shape, generator=gen).to(timer.device).requires_grad_(True)
               for _ in range(3))
    go = torch.randn(shape, generator=gen).to(timer.device)
    mask = ops_attn.random_block_mask(c.batch, c.heads, c.tokens, c.sparsity, generator=gen,
                                      device=timer.device)
    fwd = {"sdpa": lambda: ops_attn.sdpa_attention(q, k, v),
           "eager": lambda: ops_attn.eager_attention(q, k, v),
           "sparse": lambda: ops_attn.block_sparse_attention(q, k, v, mask, shortcut=False)}
    fns = {name: forward_backward(f, (q, k, v), go) for name, f in fwd.items()}
    with threads(ops.threads) as n_threads:
        ts = interleave(fns, timer.device, warmup=ops.warmup, rounds=ops.rounds)
        with torch.no_grad():
            tsf = interleave({n: fwd[n] for n in ("sdpa", "sparse")}, timer.device,
                             warmup=ops.warmup, rounds=ops.rounds)
        timer.measure(fns["sparse"], warmup=0, rounds=max(1, ops.rounds // 2))
    t, tf = medians(ts), medians(tsf)
    return {"t_sdpa": t["sdpa"], "t_eager": t["eager"], "t_sparse": t["sparse"],
            "speedup_sdpa": paired_ratio(ts["sdpa"], ts["sparse"]),
            "speedup_eager": paired_ratio(ts["eager"], ts["sparse"]),
            "t_sdpa_fwd": tf["sdpa"], "t_sparse_fwd": tf["sparse"],
            "speedup_sdpa_fwd": paired_ratio(tsf["sdpa"], tsf["sparse"]),
            "density": ops_attn.block_density(mask), "threads": n_threads}


@functools.cache
def _model(name: str):
    return setups.load(name).eval()


def _means(metrics: dict) -> dict:
    return {f"{k}_mean": sum(v) / len(v) for k, v in metrics.items() if v}


def measure_exposer(case, config, timer) -> dict:
    """exp-ablation-{attn,mlp}-sparsity: per-layer exposer densities, one timed round."""
    c = case
    model = _model(c.model).to(timer.device)
    ids = corpus_rows(c.model, c.batch, c.seq_len).to(timer.device)
    cfg = exposer.ExposerConfig(mass=c.mass, mlp_block=c.mlp_block, mlp_rel=c.mlp_rel)
    with threads(config.ops.threads):
        cap = exposer.run_captured(model, ids)
        exposure = timer.measure(lambda: exposer.expose_captured(cap, cfg), warmup=0, rounds=1)
    m = exposure.metrics()
    return {**m, **_means(m), "layers": len(exposure.layers)}


def measure_mlp_grain(case, config, timer) -> dict:
    """MLP sparsity by block size and threshold, plain and with neurons reordered from
    calibration rows (train split) and judged on held-out rows (val split)."""
    model = _model(case.model)
    calib = corpus_rows(case.model, config.ops.train_rows, case.seq_len, "train")
    held = corpus_rows(case.model, case.batch, case.seq_len)
    c = config.ops
    time_blocks = tuple(dict.fromkeys((c.mlp_block, 128))) if c.grain_time_rounds else ()
    with threads(c.threads):
        return timer.measure(lambda: mlp_grain.grain_study(
            model, calib, held, time_blocks=time_blocks, rounds=c.grain_time_rounds,
            warmup=min(1, c.warmup), device=timer.device), warmup=0, rounds=1)  # smoke: warmup 0


def measure_predictor_quality(case, config, timer) -> dict:
    """Predictors.evaluate on held-out rows, their `_mean`s, minimum recalls and thresholds."""
    c = case
    model = _model(c.model)  # predictors train on CPU tensors
    rows = corpus_rows(c.model, c.train_rows + c.test_rows, c.seq_len)
    cfg = predictors.PredictorConfig(mass=c.mass, mlp_rel=c.mlp_rel, rank=c.rank, steps=c.steps)
    with threads(config.ops.threads):
        preds = timer.measure(lambda: predictors.train_predictors(model, rows[:c.train_rows],
                                                                  mlp_block=c.mlp_block, cfg=cfg),
                                      warmup=0, rounds=1)
        m = preds.evaluate(model, rows[c.train_rows:])
    mins = {f"{k}_min": min(m[k]) for k in ("attn_recall", "mlp_recall", "mlp_seq_recall")}
    return {**m, **_means(m), **mins, "attn_threshold": preds.attn_thr,
            "mlp_threshold": preds.mlp_thr, "recall_target": cfg.recall_target}


def measure_pattern(case, config, timer) -> dict:
    """exp-ablation-attn-patterns (Fig 9, patterns.py): predictors trained on ops.train_rows
    corpus rows, the study on the next case.batch rows, one timed round."""
    ops = config.ops
    model = _model(case.model)  # predictors and captures on CPU tensors
    rows = corpus_rows(case.model, ops.train_rows + case.batch, case.seq_len)
    cfg = PatternConfig(mass=case.mass, mlp_rel=case.mlp_rel, mlp_block=case.mlp_block,
                        rank=ops.rank, steps=ops.predictor_steps, rounds=ops.rounds,
                        warmup=ops.warmup, device=timer.device)
    with threads(ops.threads) as n:
        out = timer.measure(lambda: pattern_study(model, rows[ops.train_rows:], cfg,
                                                  rows[:ops.train_rows]), warmup=0, rounds=1)
    return {"threads": n, **out}


# kind -> (its cases at a scale, what one case measures): what core.session.Run reads
KINDS = {
    "end2end": (end2end_cases, measure_end2end),
    "scale": (scale_cases, measure_end2end),
    "ablation": (ablation_cases, measure_end2end),
    "gpt2": (gpt2_cases, measure_gpt2),
    "memory": (memory_cases, measure_memory),
    "breakdown": (breakdown_cases, measure_breakdown),
    "model_step": (model_step_cases, measure_model_step),
    "predictor": (predictor_cases, measure_predictor),
    "op_mlp": (opcases.op_mlp_cases, measure_op_mlp),
    "op_attn": (opcases.op_attn_cases, measure_op_attn),
    "kernel": (opcases.kernel_cases, measure_kernel),
    "exposer": (opcases.exposer_cases, measure_exposer),
    "pattern": (opcases.pattern_cases, measure_pattern),
    "mlp_grain": (opcases.mlp_grain_cases, measure_mlp_grain),
    "doc_attn": (doc_attn_cases, measure_doc_attn),
    "predictor_quality": (opcases.predictor_quality_cases, measure_predictor_quality),
}
