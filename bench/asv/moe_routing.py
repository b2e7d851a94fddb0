"""asv benchmarks for MoE routing: router kernels (time_*) and result metrics (track_*).

    cd bench/asv && asv run --quick --bench moe_routing
"""

import torch

from benchlab import moe_routing as mr
from benchlab.core import experiments
from benchlab.moe_routing import speed


def _config():
    return experiments.config("moe_routing")


class Routers:
    params = ["topk_8", "topp_0.4", "bh_strict", "bh_moderate", "bh_loose", "bh_naive",
              "bh_pooled", "bh_within", "bh_adaptive"]
    param_names = ["routing"]

    def setup(self, routing):
        cfg = _config()
        self.routing = mr.ROUTINGS.get(routing)
        self.logits, self.null = speed.router_inputs(cfg.router_tokens, cfg.router_experts,
                                                     routing=self.routing)
        mr.route(self.logits, self.routing, self.null)  # builds the alpha's ladder, untimed

    def time_route(self, routing):
        mr.route(self.logits, self.routing, self.null)

    def track_mean_experts(self, routing):
        return float(mr.route(self.logits, self.routing, self.null)[0].sum(-1).float().mean())


class BHSelect:
    def setup(self):
        self.p = torch.rand(4096, 64)

    def time_bh_select(self):
        mr.bh_select(self.p, 0.05, 1, 8)


class SpeedRatios:
    """The side-by-side ratios the benchmarks record, as tracked metrics."""

    timeout = 300

    def setup_cache(self):
        cfg = _config()
        router = speed.router_cost(mr.ROUTINGS.get("bh_moderate"), cfg.router_tokens,
                                   cfg.router_experts, rounds=10)
        layer = speed.layer_scaling(cfg.layer_hidden, cfg.layer_intermediate, cfg.layer_tokens,
                                    cfg.layer_ks, rounds=3)
        return {"router": router["ratio_vs_topk_router"],
                "slope": layer["time_per_expert_slope"]}

    def track_router_ratio_vs_topk(self, cache):
        return cache["router"]

    def track_layer_time_per_expert_slope(self, cache):
        return cache["slope"]
