"""What each case kind measures: `measure_<kind>(case, config, timer) -> metrics`, used by the
bench module, the CLI and asv alike. Timing is core.timing's Timer (pytest-benchmark under
pytest, plain rounds elsewhere); the speed ratios come from speed.py's side-by-side rounds.

    python -c "from benchlab.core import Timer; from benchlab.moe_routing import *; \
        from benchlab.moe_routing.measure import measure_layer; c = CONFIGS['tiny']; \
        print(measure_layer(layer_cases(c)[0], c, Timer()))"
"""

import torch

from . import (
    forward_cases,
    frontier,
    frontier_cases,
    generate_cases,
    layer_cases,
    layer_equal_cases,
    model_router_cases,
    router_cases,
    speed,
)
from .harness import load_setup, prompt, run_prompt
from .model import apply_routing
from .routers import ROUTINGS, route


def _setup(config, timer):
    return load_setup(config, timer.device, config.fp16)  # cached per process


def measure_generate(case, config, timer, setup=None) -> dict:
    """The seed's metrics of one (routing, prompt) (harness.run_prompt): generation timed
    over config.gen_rounds rounds after one warm-up, the fastest round kept. `setup`: default
    the config's own (the CLI passes its model and stored nulls)."""

    def fastest(fn):
        rounds = []
        timer.measure(fn, warmup=1, rounds=config.gen_rounds, times=rounds)
        return min(rounds)

    return run_prompt(setup or _setup(config, timer), case.routing, prompt(case.prompt),
                      config.max_new_tokens, fastest)


def measure_router(case, config, timer) -> dict:
    """The router on Gaussian logits; its cost vs softmax + torch.topk (goal <= 1.5x)."""
    routing = ROUTINGS.get(case.routing)
    logits, null = speed.router_inputs(config.router_tokens, config.router_experts,
                                       device=timer.device, routing=routing)
    timer.measure(lambda: route(logits, routing, null), warmup=1, rounds=config.speed_rounds)
    # the ratio: interleaved rounds, medians (each call is a few ms, so many rounds are cheap)
    return speed.router_cost(routing, config.router_tokens, config.router_experts, timer.device,
                             rounds=10 * config.speed_rounds)


def measure_model_router(case, config, timer) -> dict:
    """The router on the config model's own held-out router logits (every layer) vs the top-8
    router on the same logits (goal <= 1.0x for BH; speed.model_router_cost)."""
    setup = _setup(config, timer)
    return timer.measure(lambda: speed.model_router_cost(setup, case.routing,
                                                         rounds=10 * config.speed_rounds),
                         warmup=0, rounds=1)


def measure_forward(case, config, timer) -> dict:
    """Model forward with BH vs top-k at BH's mean expert count (goal <= 1.05x)."""
    setup = _setup(config, timer)
    m, ids = setup.model, setup.heldout
    apply_routing(m, case.routing, setup.null_for(case.routing))
    with torch.no_grad():
        timer.measure(lambda: m(input_ids=ids, use_cache=False), warmup=1,
                      rounds=config.speed_rounds)
    return speed.forward_equal_count(setup, case.routing, rounds=6 * config.speed_rounds)


def measure_layer(case, config, timer) -> dict:
    """MoE-layer time vs experts used (goal: slope >= 0.8)."""
    block = speed.moe_layer(config.layer_hidden, config.layer_intermediate, device=timer.device)
    x = torch.randn(1, config.layer_tokens, config.layer_hidden, device=timer.device)
    with torch.no_grad():
        timer.measure(lambda: block(x), warmup=1, rounds=config.speed_rounds)
    return speed.layer_scaling(config.layer_hidden, config.layer_intermediate,
                               config.layer_tokens, config.layer_ks, device=timer.device,
                               rounds=3 * config.speed_rounds)


def measure_layer_equal(case, config, timer) -> dict:
    """One MoE layer of the case's shape: BH vs top-k at BH's mean expert count (<= 1.05x)."""
    routing = ROUTINGS.get(case.routing)
    return timer.measure(lambda: speed.layer_equal_count(
        routing, case.hidden, case.intermediate, case.tokens, device=timer.device,
        rounds=3 * config.speed_rounds), warmup=0, rounds=1)


def measure_frontier(case, config, timer) -> dict:
    """A small slice of `benchlab moe-routing frontier`: config.slice_rules on the held-out
    text, timed once; experts, KL, perplexity, fill-in per rule and the KL difference to top-k."""
    setup = _setup(config, timer)
    rs = [frontier.rule(config, n) for n in config.slice_rules]
    for r in rs:
        setup.null_for(r)  # calibration (under each rule) is setup, not the timed evaluation
    points = {}
    timer.measure(lambda: points.update({r.name: frontier.evaluate(setup, r) for r in rs}),
                  warmup=0, rounds=1)
    metrics, n_seq = {}, setup.heldout.shape[0]
    for row in frontier.summarize(points, rs, 200, n_seq):
        for key in ("experts", "kl", "ppl", "fill_in"):
            if key in row:
                metrics[f"{key}_{row['rule']}"] = row[key]
    for t in frontier.versus(points, rs, n_seq, n_boot=200, tested_only=False):  # every sequence
        metrics[f"kl_diff_{t['rule']}"] = t["estimate"]
    return metrics


# kind -> (its cases at a scale, what one case measures): what core.session.Run reads
KINDS = {
    "generate": (generate_cases, measure_generate),
    "router": (router_cases, measure_router),
    "model_router": (model_router_cases, measure_model_router),
    "forward": (forward_cases, measure_forward),
    "layer": (layer_cases, measure_layer),
    "layer_equal": (layer_equal_cases, measure_layer_equal),
    "frontier": (frontier_cases, measure_frontier),
}
