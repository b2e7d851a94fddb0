"""asv benchmarks for MoE routing: router kernels (time_*) and result metrics (track_*).

    cd bench/asv && asv run --quick --bench moe_routing

The routers timed and tracked are the bench's own router cases at the scale (router_cases: every
router variant; time_route adds the top-k baseline). Every track_* value is a metric of a record
made by core.session.Run.measure (moe_routing.measure's functions, as the bench module records
them: side-by-side rounds, paired ratios), measured once per class in setup_cache.
"""


from benchlab import moe_routing as mr
from benchlab.core import timing
from benchlab.core.asv_suite import Suite
from benchlab.moe_routing.report import BASELINE

Base = Suite("moe_routing")
ROUTER_CASES = [c.id for c in mr.router_cases(Base.config)]  # data: the scale's case ids






class Routers(Base):
    """One routing call on the router cases' Gaussian logits, per router case and top-k."""

    params = [BASELINE] + [c.routing for c in mr.router_cases(Base.config)]
    param_names = ["routing"]

    def setup(self, routing):
        from benchlab.moe_routing import speed

        cfg = self.config
        self.routing = mr.ROUTINGS.get(routing)
        self.logits, self.null = speed.router_inputs(cfg.router_tokens, cfg.router_experts,
                                                     device=self.device, routing=self.routing)
        mr.route(self.logits, self.routing, self.null)  # builds the alpha's ladder, untimed

    def time_route(self, routing):
        mr.route(self.logits, self.routing, self.null)
        timing.synchronize(self.device)


class RouterResults(Base):
    """The router cases' records (measure_router): experts selected per token and the cost
    relative to the top-k router, timed side by side."""

    params = ROUTER_CASES
    param_names = ["case"]

    def setup_cache(self):
        return self.measured("router")

    def track_mean_selected(self, records, case):
        return records[case]["mean_selected"]

    def track_ratio_vs_topk_router(self, records, case):
        return records[case]["ratio_vs_topk_router"]

    track_mean_selected.unit = "experts per token"
    track_ratio_vs_topk_router.unit = "ratio"


class BHSelect(Base):
    def setup(self):
        import torch

        self.p = torch.rand(self.config.router_tokens, self.config.router_experts,
                            device=self.device)

    def time_bh_select(self):
        mr.bh_select(self.p, 0.05, 1, 8)
        timing.synchronize(self.device)


class LayerResults(Base):
    """The layer case's record (measure_layer): MoE-layer time against experts used."""

    def setup_cache(self):
        return next(iter(self.measured("layer").values()))

    def track_layer_time_per_expert_slope(self, metrics):
        return metrics["time_per_expert_slope"]

    track_layer_time_per_expert_slope.unit = "slope"
