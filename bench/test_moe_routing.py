"""MoE routing benchmarks: BH vs top-k (and top-p, naive BH) on the zoo's OLMoE.

    pytest bench/test_moe_routing.py --bench-store /tmp/moe/store.jsonl \
        --bench-reports /tmp/moe/reports --benchmark-json /tmp/moe/out.json

What each case measures is benchlab.moe_routing.measure's KINDS (the CLI and asv go
through the same core.session.Run):
- test_generate[routing-prompt]: the seed's grid (routings x prompts, prompt by prompt, the
  routing order rotated per prompt): experts per token, generation time (fastest round),
  utilization, held-out KL / perplexity vs topk_8, min_k fill-in share.
- test_router_cost[router-X]: router X vs softmax+torch.topk on 4096 x 64 logits (goal <= 1.5x).
- test_model_router_cost[model_router-X]: BH router X on the tiny model's own held-out router
  logits (every layer) vs the top-8 router on the same logits (goal <= 1.0x).
- test_forward_equal_count[forward-X]: model forward with BH vs top-k at BH's mean expert count
  (goal <= 1.05x).
- test_layer_equal_count[layer_equal-X-h-i-t]: one MoE layer of the tiny model's and of
  OLMoE-1B-7B's shape, BH vs top-k at BH's mean expert count (goal <= 1.05x).
- test_layer_scaling: MoE-layer time vs experts used (goal: slope >= 0.8).
- test_frontier_slice: a few rules of the frontier study (KL, perplexity, experts, fill-in).
Ratios come from side-by-side rounds (moe_routing.speed, core.stats.paired_ratio).
"""

import pytest

pytestmark = pytest.mark.experiment("moe_routing")


@pytest.mark.cases("generate")
def test_generate(case, measure):
    measure(case)


@pytest.mark.cases("router")
def test_router_cost(case, measure):
    measure(case)


@pytest.mark.cases("model_router")
def test_model_router_cost(case, measure):
    measure(case)


@pytest.mark.cases("forward")
def test_forward_equal_count(case, measure):
    measure(case)


@pytest.mark.cases("layer")
def test_layer_scaling(case, measure):
    measure(case)


@pytest.mark.cases("layer_equal")
def test_layer_equal_count(case, measure):
    measure(case)


@pytest.mark.cases("frontier")
def test_frontier_slice(case, measure):
    measure(case)
