"""asv benchmarks for MoE routing: router kernels (time_*) and result metrics (track_*).

    cd bench/asv && asv run --quick --bench moe_routing

The tracked ratios are moe_routing.measure's (the bench module's): side-by-side rounds, paired
ratios (core.stats.paired_ratio).
"""

import torch

from benchlab import moe_routing as mr
from benchlab.core import timing
from benchlab.core.asv_suite import Suite
from benchlab.moe_routing import measure as M
from benchlab.moe_routing import speed

Base = Suite("moe_routing")


class Routers(Base):
    params = ["topk_8", "topp_0.4", "bh_strict", "bh_moderate", "bh_loose", "bh_naive",
              "bh_pooled", "bh_within", "bh_adaptive"]
    param_names = ["routing"]

    def setup(self, routing):
        cfg = self.config
        self.routing = mr.ROUTINGS.get(routing)
        self.logits, self.null = speed.router_inputs(cfg.router_tokens, cfg.router_experts,
                                                     device=self.device, routing=self.routing)
        mr.route(self.logits, self.routing, self.null)  # builds the alpha's ladder, untimed

    def time_route(self, routing):
        mr.route(self.logits, self.routing, self.null)
        timing.synchronize(self.device)

    def track_mean_experts(self, routing):
        return float(mr.route(self.logits, self.routing, self.null)[0].sum(-1).float().mean())


class BHSelect(Base):
    def setup(self):
        self.p = torch.rand(4096, 64, device=self.device)

    def time_bh_select(self):
        mr.bh_select(self.p, 0.05, 1, 8)
        timing.synchronize(self.device)


class SpeedRatios(Base):
    """The side-by-side ratios the benchmarks record (measure_router, measure_layer), tracked."""

    def setup_cache(self):
        cfg, timer = self.config, self.measurer()
        router = M.measure_router(mr.Case("router-bh_moderate", "router", "bh_moderate"), cfg,
                                  timer)
        layer = M.measure_layer(mr.layer_cases(cfg)[0], cfg, timer)
        return {"router": router["ratio_vs_topk_router"],
                "slope": layer["time_per_expert_slope"]}

    def track_router_ratio_vs_topk(self, cache):
        return cache["router"]

    def track_layer_time_per_expert_slope(self, cache):
        return cache["slope"]
