"""MoE routing benchmarks: BH vs top-k (and top-p, naive BH) on the zoo's OLMoE.

    pytest bench/test_moe_routing.py --bench-store /tmp/moe/store.jsonl \
        --bench-reports /tmp/moe/reports --benchmark-json /tmp/moe/out.json

- test_generate[routing-prompt]: the seed's grid (routings x prompts, prompt by prompt, the
  routing order rotated per prompt): experts per token, generation time, utilization, held-out
  KL / perplexity vs topk_8, min_k fill-in share.
- test_router_cost[router-X]: router X vs softmax+torch.topk on 4096 x 64 logits (goal <= 1.5x).
- test_forward_equal_count[forward-X]: model forward with BH vs top-k at BH's mean expert count
  (goal <= 1.05x).
- test_layer_scaling: MoE-layer time vs experts used (goal: slope >= 0.8).
- test_frontier_slice: a few rules of the frontier study (KL, perplexity, experts, fill-in).
"""

import pytest

from benchlab import moe_routing as mr
from benchlab.core import measure
from benchlab.moe_routing import experiment, speed

pytestmark = pytest.mark.experiment("moe_routing")


@pytest.fixture
def setup(config, device):
    return experiment.load_setup(config, device, config.fp16)  # cached per process


@pytest.mark.cases("generate_cases")
def test_generate(benchmark, case, config, device, seed, record, setup):
    times = []

    def timer(fn):
        rounds = []
        measure(benchmark, fn, device, warmup=1, rounds=config.gen_rounds, times=rounds)
        times.append(min(rounds))
        return times[-1]

    metrics = experiment.run_prompt(setup, case.routing, experiment.prompt(case.prompt),
                                    config.max_new_tokens, timer)
    record(**metrics)


@pytest.mark.cases("router_cases")
def test_router_cost(benchmark, case, config, device, seed, record):
    routing = mr.ROUTINGS.get(case.routing)
    logits, null = speed.router_inputs(config.router_tokens, config.router_experts,
                                       device=device, routing=routing)
    measure(benchmark, lambda: mr.route(logits, routing, null), device, warmup=1,
            rounds=config.speed_rounds)
    # the ratio: interleaved rounds, medians (each call is a few ms, so many rounds are cheap)
    record(**speed.router_cost(routing, config.router_tokens, config.router_experts, device,
                               rounds=10 * config.speed_rounds))


@pytest.mark.cases("forward_cases")
def test_forward_equal_count(benchmark, case, config, device, seed, record, setup):
    m, ids = setup.model, setup.heldout
    mr.apply_routing(m, case.routing, setup.null_for(case.routing))
    import torch

    with torch.no_grad():
        measure(benchmark, lambda: m(input_ids=ids, use_cache=False), device, warmup=1,
                rounds=config.speed_rounds)
    record(**speed.forward_equal_count(setup, case.routing, rounds=6 * config.speed_rounds))


@pytest.mark.cases("layer_cases")
def test_layer_scaling(benchmark, case, config, device, seed, record):
    import torch

    block = speed.moe_layer(config.layer_hidden, config.layer_intermediate, device=device)
    x = torch.randn(1, config.layer_tokens, config.layer_hidden, device=device)
    with torch.no_grad():
        measure(benchmark, lambda: block(x), device, warmup=1, rounds=config.speed_rounds)
    record(**speed.layer_scaling(config.layer_hidden, config.layer_intermediate,
                                 config.layer_tokens, config.layer_ks, device=device,
                                 rounds=3 * config.speed_rounds))


@pytest.mark.cases("frontier_cases")
def test_frontier_slice(benchmark, case, config, device, seed, record, setup):
    """A small slice of `benchlab moe-routing frontier`: a few rules on the held-out text."""
    from benchlab.moe_routing import frontier as fr

    rs = [fr.rule(config, n) for n in config.slice_rules]
    for r in rs:
        setup.null_for(r)  # calibration (under each rule) is setup, not the timed evaluation
    points = {}
    measure(benchmark, lambda: points.update({r.name: fr.evaluate(setup, r) for r in rs}),
            device, warmup=0, rounds=1)
    metrics = {}
    for row in fr.summarize(points, rs, 200):
        metrics[f"experts_{row['rule']}"] = row["experts"]
        metrics[f"kl_{row['rule']}"] = row["kl"]
        metrics[f"ppl_{row['rule']}"] = row["ppl"]
        if "fill_in" in row:
            metrics[f"fill_in_{row['rule']}"] = row["fill_in"]
    for t in fr.versus_topk(points, rs, 200):
        metrics[f"kl_diff_{t['rule']}"] = t["kl_diff"]
    record(**metrics)
