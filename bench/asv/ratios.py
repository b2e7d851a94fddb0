"""asv history of the speed ratios that `benchlab compare` gates (each experiment's RATIOS,
core.ratios): one class per gated ratio, `track_ratio` per case, each the median paired ratio
of the record core.session.Run measures in setup_cache, as the bench module measures it.

    asv run --quick --bench ratios      # BENCHLAB_SCALE=tiny|small|paper

A class names its (experiment, ratio); its cases and metric come from the declaration. (asv keys
a setup_cache by its source line, so each class has its own; tests/core/test_core_asv.py checks
that every gated ratio has one.)
"""

import fnmatch
import os

from benchlab.core import experiments
from benchlab.core.asv_suite import Suite


def declared(exp: str, name: str):
    return experiments.load(exp).RATIOS[name]


def case_ids(exp: str, name: str) -> list[str]:
    """The ids of the ratio's cases at the scale (data: asv needs them as params)."""
    from benchlab.core.session import case_id_of, kinds_of

    ratio = declared(exp, name)
    cases = kinds_of(experiments.load(exp))[ratio.kind][0](experiments.config(exp))
    return [case_id_of(c) for c in cases if fnmatch.fnmatchcase(case_id_of(c), ratio.cases)]


def measured(suite, exp: str, name: str) -> dict:
    """{case id: the ratio} of records Run.measure makes for the ratio's cases."""
    from benchlab.core.session import Run, case_id_of

    ratio, ids = declared(exp, name), case_ids(exp, name)
    run = Run(exp, os.environ.get("BENCHLAB_SCALE", "tiny"), device=suite.device,
              config=suite.config)
    return {case_id_of(c): run.measure(ratio.kind, c)["metrics"].get(ratio.metric)
            for c in run.cases(ratio.kind) if case_id_of(c) in ids}


class Ratio:
    param_names = ["case"]
    timeout = 1800

    def track_ratio(self, cache, case):
        return cache[case]

    track_ratio.unit = "ratio"


class ExactVsMilp(Ratio, Suite("layer_selection")):
    ratio = ("layer_selection", "exact_vs_milp")
    params = case_ids(*ratio)

    def setup_cache(self):
        return measured(self, *self.ratio)


class RouterVsTopk8(Ratio, Suite("moe_routing")):
    ratio = ("moe_routing", "router_vs_topk8")
    params = case_ids(*ratio)

    def setup_cache(self):
        return measured(self, *self.ratio)


class ForwardVsTopk(Ratio, Suite("moe_routing")):
    ratio = ("moe_routing", "forward_vs_topk")
    params = case_ids(*ratio)

    def setup_cache(self):
        return measured(self, *self.ratio)


class LayerVsTopk(Ratio, Suite("moe_routing")):
    ratio = ("moe_routing", "layer_vs_topk")
    params = case_ids(*ratio)

    def setup_cache(self):
        return measured(self, *self.ratio)


class SubspaceStepVsLora(Ratio, Suite("sublora")):
    ratio = ("sublora", "subspace_step_vs_lora")
    params = case_ids(*ratio)

    def setup_cache(self):
        return measured(self, *self.ratio)


class ExactVsUpstream(Ratio, Suite("layer_selection")):
    ratio = ("layer_selection", "exact_vs_upstream")
    params = case_ids(*ratio)

    def setup_cache(self):
        return measured(self, *self.ratio)


# the shared base is no benchmark: asv takes one from every class left in the module
del Ratio
