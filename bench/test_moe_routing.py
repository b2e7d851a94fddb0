"""MoE routing benchmarks: BH vs top-k (and top-p, naive BH) on the zoo's OLMoE.

    pytest bench/test_moe_routing.py --bench-store /tmp/moe/store.jsonl \
        --bench-reports /tmp/moe/reports --benchmark-json /tmp/moe/out.json

What each case measures is benchlab.moe_routing.measure's `measure_<kind>` (the CLI and asv call
the same functions):
- test_generate[routing-prompt]: the seed's grid (routings x prompts, prompt by prompt, the
  routing order rotated per prompt): experts per token, generation time (fastest round),
  utilization, held-out KL / perplexity vs topk_8, min_k fill-in share.
- test_router_cost[router-X]: router X vs softmax+torch.topk on 4096 x 64 logits (goal <= 1.5x).
- test_forward_equal_count[forward-X]: model forward with BH vs top-k at BH's mean expert count
  (goal <= 1.05x).
- test_layer_equal_count[layer_equal-X-h-i-t]: one MoE layer of the tiny model's and of
  OLMoE-1B-7B's shape, BH vs top-k at BH's mean expert count (goal <= 1.05x).
- test_layer_scaling: MoE-layer time vs experts used (goal: slope >= 0.8).
- test_frontier_slice: a few rules of the frontier study (KL, perplexity, experts, fill-in).
Ratios come from side-by-side rounds (moe_routing.speed, core.stats.paired_ratio).
"""

import pytest

from benchlab.moe_routing import measure as M

pytestmark = pytest.mark.experiment("moe_routing")


@pytest.mark.cases("generate_cases")
def test_generate(case, config, timer, seed, record):
    record(**M.measure_generate(case, config, timer))


@pytest.mark.cases("router_cases")
def test_router_cost(case, config, timer, seed, record):
    record(**M.measure_router(case, config, timer))


@pytest.mark.cases("forward_cases")
def test_forward_equal_count(case, config, timer, seed, record):
    record(**M.measure_forward(case, config, timer))


@pytest.mark.cases("layer_cases")
def test_layer_scaling(case, config, timer, seed, record):
    record(**M.measure_layer(case, config, timer))


@pytest.mark.cases("layer_equal_cases")
def test_layer_equal_count(case, config, timer, seed, record):
    record(**M.measure_layer_equal(case, config, timer))


@pytest.mark.cases("frontier_cases")
def test_frontier_slice(case, config, timer, seed, record):
    record(**M.measure_frontier(case, config, timer))
