"""Speed comparisons, each timed side by side (interleaved rounds, paired ratios) in one call.

    python -m benchlab.moe_routing.speed    # router cost of BH vs torch.topk, 4096 x 64

Every function times its contenders with core.timing.interleave and takes ratios of paired
rounds (core.stats.paired_ratio).

- router_cost: BH routing (calibrated p-values + step-up + caps) vs the top-8 router
  (softmax + torch.topk) and vs a bare torch.topk on the same logits.
- layer_scaling: one MoE layer (router + grouped dispatch) with top-k for k in ks; the slope of
  t(k)/t(8) against k/8 says how much of the expert saving shows up as time (goal >= 0.8).
- layer_equal_count: one random MoE layer of a given shape, BH vs top-k at BH's mean expert
  count (the same goal, <= 1.05x): the router's cost against the experts' as the layer widens.
- forward_equal_count: a whole-model forward under BH vs top-k at the same mean expert count
  (top-k timed at floor and ceil of BH's mean and interpolated; goal <= 1.05; with a bootstrap
  interval of the paired ratio, as this machine's noise is of the goal's size), with the router
  cost on that model's own router logits beside it (vs top-8's router, the 1.5x goal, and vs the
  top-k routers of the compared forwards) and the share of the forward it adds
  (Gaussian logits flatter BH: held-out text puts more logits high in their expert's calibration
  range than calibration text did, and more rows need exact ranks to break ties).
"""

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from transformers import OlmoeConfig
from transformers.models.olmoe.modeling_olmoe import OlmoeSparseMoeBlock

from ..core.stats import medians, paired_ratio, paired_ratio_ci
from ..core.timing import interleave
from .calibration import make_null
from .harness import utilization
from .model import RoutedMoeBlock, apply_routing, collect_stats
from .routers import ROUTINGS, Routing, route, topk_route


def router_inputs(tokens: int, experts: int, calib: int = 8192, seed: int = 0, device="cpu",
                  routing: Routing | None = None):
    """Gaussian router logits [tokens, experts] and the null of `routing` (default per-expert)
    from `calib` more, as a layer view."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(tokens, experts, generator=g).to(device)
    definition = routing.null if routing is not None and routing.calibrated else "per_expert"
    T = routing.temperature if routing is not None else 1.0
    null = make_null(definition, torch.randn(1, calib, experts, generator=g), T).to(device)
    return logits, null.layer(0)


def router_cost(routing: Routing, tokens=4096, experts=64, device="cpu", rounds=10,
                inner=1) -> dict:
    logits, null = router_inputs(tokens, experts, device=device, routing=routing)
    fns = {
        "bh": lambda: route(logits, routing, null),
        "topk_router": lambda: topk_route(logits, 8),
        "torch_topk": lambda: torch.topk(logits, 8, dim=-1),
    }
    times = interleave(fns, device, rounds=rounds, inner=inner)
    t = medians(times)
    return {"router_time": t["bh"], "topk_router_time": t["topk_router"],
            "torch_topk_time": t["torch_topk"],
            "ratio_vs_topk_router": paired_ratio(times["bh"], times["topk_router"]),
            "ratio_vs_topk_router_ci": paired_ratio_ci(times["bh"], times["topk_router"],
                                                       n_resamples=2000),
            "ratio_vs_torch_topk": paired_ratio(times["bh"], times["torch_topk"]),
            "mean_selected": float(route(logits, routing, null)[0].sum(-1).float().mean())}


@torch.no_grad()
def model_router_cost(setup, routing: str, rounds: int = 30) -> dict:
    """The router alone, every layer, on the config model's own router logits: those of one
    held-out forward routed by `routing` with its null calibrated under itself; the routing vs
    the top-8 router (softmax + torch.topk) on the same logits, side by side in rotated rounds:
    the paired ratio and its 95% bootstrap interval over rounds (goal <= 1.0 for BH)."""
    rt = ROUTINGS.get(routing)
    _, logits, route_all = heldout_routers(setup, rt, setup.null_for(rt))
    times = interleave({"routing": route_all, "topk": lambda: [topk_route(x, 8) for x in logits]},
                       setup.device, rounds=rounds)
    return {"model_router_time": float(np.median(times["routing"])),
            "model_topk_router_time": float(np.median(times["topk"])),
            "model_router_ratio": paired_ratio(times["routing"], times["topk"]),
            "model_router_ratio_ci": paired_ratio_ci(times["routing"], times["topk"],
                                                     n_resamples=2000)}


def heldout_routers(setup, routing: Routing, null):
    """One held-out forward routed by `routing`: its RoutingStats, its router logits [T, E] per
    layer, and a function that routes all of them again (every layer, the router alone)."""
    m = apply_routing(setup.model, routing, null)
    with collect_stats(m, keep_logits=True) as st:
        m(input_ids=setup.heldout, use_cache=False)
    logits = [torch.cat(layer).to(setup.device) for layer in st.logits]  # [T, E] per layer
    nulls = [null.layer(i) if null is not None else None for i in range(len(logits))]
    return st, logits, lambda: [route(x, routing, n) for x, n in zip(logits, nulls, strict=True)]


def moe_layer(hidden: int, intermediate: int, experts: int = 64, seed: int = 0, device="cpu"):
    """A random OLMoE MoE block of the given shape (float32), wrapped for routing, routed by
    topk_8. Built once per shape, seed and device in a process (OLMoE-1B-7B's takes ~8 s on a
    CPU core: 400M weights drawn, then laid out row-major), its routing reset on each call."""
    block = _moe_layer(hidden, intermediate, experts, seed, str(device))
    block.gate.set_routing(ROUTINGS.get("topk_8"), None)
    return block


@functools.lru_cache(maxsize=2)
def _moe_layer(hidden: int, intermediate: int, experts: int, seed: int, device: str):
    cfg = OlmoeConfig(hidden_size=hidden, intermediate_size=intermediate, num_experts=experts,
                      num_experts_per_tok=8, vocab_size=8, num_hidden_layers=1,
                      num_attention_heads=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        block = OlmoeSparseMoeBlock(cfg)
        for p in block.parameters():
            torch.nn.init.normal_(p, std=0.02)
    return RoutedMoeBlock(block, 0, ROUTINGS.get("topk_8"), None).to(device).eval()


@torch.no_grad()
def layer_scaling(hidden: int, intermediate: int, tokens: int, ks=(1, 2, 4, 8), experts=64,
                  device="cpu", rounds=5) -> dict:
    block = moe_layer(hidden, intermediate, experts, device=device)
    x = torch.randn(1, tokens, hidden, device=device)
    routings = {k: Routing(f"topk_{k}", "topk", k=k) for k in ks}

    def run(k):
        block.gate.set_routing(routings[k], None)
        return block(x)

    t = medians(interleave({k: (lambda k=k: run(k)) for k in ks}, device, rounds=rounds))
    kmax = max(ks)
    rel_k = np.array([k / kmax for k in ks])
    rel_t = np.array([t[k] / t[kmax] for k in ks])
    slope = float(np.polyfit(rel_k, rel_t, 1)[0])  # 1.0 = time proportional to experts
    return {"ks": list(ks), "layer_times": [t[k] for k in ks], "relative_times": rel_t.tolist(),
            "time_per_expert_slope": slope, "tokens": tokens, "hidden": hidden,
            "intermediate": intermediate}


def floor_ceil(mean_k: float, max_k: int = 8) -> tuple[int, int]:
    """The top-k counts around BH's mean expert count (at least 1, at most max_k)."""
    return min(max_k, max(1, math.floor(mean_k))), min(max_k, max(1, math.ceil(mean_k)))


def interpolate(times: dict, w: float, lo: int, hi: int) -> np.ndarray:
    """Per round, top-k's time at a count w of the way from lo to hi experts."""
    return (1 - w) * np.array(times[f"topk_{lo}"]) + w * np.array(times[f"topk_{hi}"])


def at_equal_count(times: dict, mean_k: float, lo: int, hi: int):
    """From rotated rounds of "bh" and "topk_<lo>", "topk_<hi>": the weight of hi, top-k's time
    per round interpolated to BH's mean count, and {"ratio": BH / top-k (median of paired
    rounds), "ratio_ci": its 95% bootstrap interval}."""
    w = mean_k - lo if hi > lo else 0.0
    topk = interpolate(times, w, lo, hi)
    return w, topk, {"ratio": paired_ratio(times["bh"], topk),
                     "ratio_ci": paired_ratio_ci(times["bh"], topk, n_resamples=2000)}


@torch.no_grad()
def layer_equal_count(routing: Routing, hidden: int, intermediate: int, tokens: int,
                      experts: int = 64, calib: int = 8192, device="cpu", rounds: int = 5,
                      seed: int = 0) -> dict:
    """One random OLMoE MoE layer of the given shape routed by BH vs top-k interpolated to BH's
    mean expert count, on Gaussian hidden states, the null calibrated on `calib` more through
    the same router: how the router's fixed cost weighs against the experts' work as the layer
    widens (the tiny model's 128 x 32 experts vs OLMoE-1B-7B's 2048 x 1024)."""
    block = moe_layer(hidden, intermediate, experts, seed=seed, device=device)
    g = torch.Generator().manual_seed(seed + 1)
    z = torch.randn(calib, hidden, generator=g).to(device)
    x = torch.randn(1, tokens, hidden, generator=g).to(device)
    null = make_null(routing.null, F.linear(z, block.gate.weight)[None].cpu(),
                     routing.temperature).to(device)
    block.gate.set_routing(routing, null)
    mask = block.gate(x.view(-1, hidden))[1]
    mean_k = float(mask.sum(-1).float().mean())
    lo, hi = floor_ceil(mean_k, routing.max_k)

    def run(r, n=None):
        def fn():
            block.gate.set_routing(r, n)
            return block(x)
        return fn

    fns = {f"topk_{k}": run(Routing(f"topk_{k}", "topk", k=k)) for k in sorted({lo, hi})}
    fns["bh"] = run(routing, null)
    times = interleave(fns, device, rounds=rounds)
    _, topk, ratio = at_equal_count(times, mean_k, lo, hi)
    return {"mean_experts": mean_k, "topk_lo": lo, "topk_hi": hi, "hidden": hidden,
            "intermediate": intermediate, "tokens": tokens,
            "bh_layer_time": float(np.median(times["bh"])),
            "topk_layer_time": float(np.median(topk)),
            "layer_ratio": ratio["ratio"], "layer_ratio_ci": ratio["ratio_ci"]}


@torch.no_grad()
def forward_equal_count(setup, routing: str, rounds: int = 5) -> dict:
    """Forward on the held-out batch: BH vs top-k interpolated to BH's mean expert count; and
    the routers alone (all layers) on the router logits of that forward, BH vs top-8 and vs the
    top-k routers of the compared forwards."""
    m, ids, null = setup.model, setup.heldout, setup.null_for(routing)
    st, logits, route_all = heldout_routers(setup, ROUTINGS.get(routing), null)
    mean_k = float(st.per_token().mean())
    lo, hi = floor_ceil(mean_k)
    routers = interleave({
        "bh": route_all, "topk": lambda: [topk_route(x, 8) for x in logits],
        **{f"topk_{k}": (lambda k=k: [topk_route(x, k) for x in logits])
           for k in sorted({lo, hi})}}, setup.device, rounds=5 * rounds)
    load = {"bh": st.usage}  # per-expert rows: the grouped matmuls' shapes
    apply_routing(m, Routing(f"topk_{lo}", "topk", k=lo))
    with collect_stats(m) as st_lo:
        m(input_ids=ids, use_cache=False)
    load["topk"] = st_lo.usage
    fns = {}
    for k in sorted({lo, hi}):
        r = Routing(f"topk_{k}", "topk", k=k)
        fns[f"topk_{k}"] = lambda r=r: (apply_routing(m, r),
                                        m(input_ids=ids, use_cache=False))
    fns["bh"] = lambda: (apply_routing(m, routing, null), m(input_ids=ids, use_cache=False))
    times = interleave(fns, setup.device, rounds=rounds)
    w, topk, ratio = at_equal_count(times, mean_k, lo, hi)
    t_router, t_topk_router = (float(np.median(routers[n])) for n in ("bh", "topk"))
    # the routers the compared forwards run: top-k at floor and ceil of BH's mean, interpolated
    t_k_router = float(np.median(interpolate(routers, w, lo, hi)))
    return {"mean_experts": mean_k, "bh_forward_time": float(np.median(times["bh"])),
            "topk_forward_time": float(np.median(topk)),
            "forward_ratio": ratio["ratio"], "forward_ratio_ci": ratio["ratio_ci"],
            "topk_lo": lo, "topk_hi": hi,
            "model_router_time": t_router, "model_topk_router_time": t_topk_router,
            "model_router_ratio": paired_ratio(routers["bh"], routers["topk"]),
            "model_topk_k_router_time": t_k_router,
            # expert load of BH and of top-k at floor(mean): experts with rows (mean over
            # layers) and the CV of rows per expert
            **{f"{k}_active_experts": float((u > 0).sum(1).float().mean())
               for k, u in load.items()},
            **{f"{k}_util_cv": utilization(u)[0] for k, u in load.items()},
            # what the router alone adds to the forward, as a fraction of the top-k forward:
            # BH's router against the top-k routers of the forwards it is compared with (not
            # top-8's, which is dearer than top-1's: against it BH's router looked free)
            "router_overhead": (t_router - t_k_router) / float(np.median(topk))}


if __name__ == "__main__":
    print(router_cost(ROUTINGS.get("bh_moderate")))
    print(layer_scaling(256, 512, 512))
