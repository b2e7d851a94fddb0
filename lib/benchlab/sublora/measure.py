"""What each case kind measures, `measure_<kind>(case, config, timer) -> metrics`, for the bench
module and asv alike; on CPU with one torch thread (xdist spreads cases over the cores).

    python -c "from benchlab.core import Timer; from benchlab.sublora import *; \
        from benchlab.sublora.measure import measure_step; \
        c = CONFIGS['tiny']; print(measure_step(step_cases(c)[0], c, Timer()))"
"""

import functools
import statistics

import torch

from ..core.stats import paired_ratio
from ..core.timing import interleave, threads
from . import REFERENCES, W0, SweepCase, bound_cases, step_cases, sweep_cases
from .data import load_corpus
from .evaluate import eval_bounds
from .sweep import cached_base, run_config, run_point, step_pair
from .train import build_model, train


def one_thread(fn):
    """fn with one torch thread on CPU-only machines (unchanged where CUDA is available)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with threads(None if torch.cuda.is_available() else 1):
            return fn(*args, **kwargs)

    return run


_W0_BOUNDS: dict = {}


def w0_bound(config, d: int, seed: int, device: str) -> float:
    """The (deterministic) w = 0 bound of `d` and `seed`, computed once per process (or taken from
    its w = 0 case)."""
    key = (config, d, seed, device)
    if key not in _W0_BOUNDS:
        w0 = SweepCase("w0", d, *W0, seed)
        _W0_BOUNDS[key] = one_thread(run_point)(config, w0, device=device)["bound_value"]
    return _W0_BOUNDS[key]


@one_thread
def measure_sweep(case, config, timer) -> dict:
    """One sweep point (sweep.run_point), timed once. With min_gain_over_w0 > 0 a trained run also
    records its bound's gain over the w = 0 bound of its d and seed (`gain_over_w0`) and whether
    it meets the goal (`gain_met`, which the bench checks)."""
    metrics = timer.measure(lambda: run_point(config, case, device=timer.device), warmup=0,
                            rounds=1)
    if case.mode == "w0":
        _W0_BOUNDS[(config, case.d, case.seed, timer.device)] = metrics["bound_value"]
    if case.mode not in REFERENCES and config.min_gain_over_w0:
        gain = w0_bound(config, case.d, case.seed, timer.device) - metrics["bound_value"]
        metrics.update(gain_over_w0=gain, gain_goal=config.min_gain_over_w0,
                       gain_met=gain >= config.min_gain_over_w0)
    return metrics


@one_thread
def measure_step(case, config, timer) -> dict:
    """The subspace training step vs a plain LoRA step (goal <= 1.5x): the subspace step timed,
    then both side by side in rotated rounds (load on a shared machine hits both alike)."""
    sub, sub_step, lora_step = step_pair(config, case.d, case.projector, timer.device)
    timer.measure(sub_step, warmup=1, rounds=config.step_rounds)
    t = interleave({"sub": sub_step, "lora": lora_step}, timer.device, warmup=0,
                   rounds=config.step_rounds)
    return {"d": case.d, "projector": case.projector, "D": sub.D,
            "step_ratio": paired_ratio(t["sub"], t["lora"]),
            "subspace_step_ms": 1e3 * statistics.median(t["sub"]),
            "lora_step_ms": 1e3 * statistics.median(t["lora"]), "ratio_goal": 1.5}


@one_thread
def measure_bound(case, config, timer) -> dict:
    """The bound evaluation (quantize + code + evaluate s documents) of a freshly trained model,
    timed over config.bound_rounds rounds, next to its training time."""
    cfg = run_config(config, case)
    corpus = load_corpus(cfg)
    model, res = train(cfg, corpus=corpus, model=build_model(cfg, cached_base(cfg)),
                       device=timer.device, progress=None)
    m = timer.measure(lambda: eval_bounds(model, corpus, cfg, device=timer.device), warmup=0,
                      rounds=config.bound_rounds)
    return {"d": case.d, "mode": case.mode, "bound_eval_seconds": m["eval_seconds"],
            "train_seconds": res.seconds, "bound_over_train": m["eval_seconds"] / res.seconds,
            "eval_bound_value": m["bound_value"], "s": m["s"],
            "doc_tokens": m["inputs"]["doc_tokens"]}


# kind -> (its cases at a scale, what one case measures): what core.session.Run reads
KINDS = {
    "sweep": (sweep_cases, measure_sweep),
    "step": (step_cases, measure_step),
    "bound": (bound_cases, measure_bound),
}
