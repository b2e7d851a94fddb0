"""asv history of the speed ratios that `benchlab compare` gates (each experiment's RATIOS,
core.ratios): one class per ratio, `track_ratio` per case, each the median paired ratio of the
record core.session.Run measures in setup_cache, as the bench module measures it.

    asv run --quick --bench ratios      # BENCHLAB_SCALE=tiny|small|paper

The classes are built from the declarations (data): a new ratio needs no code here.
"""

import fnmatch
import os

from benchlab.core import experiments
from benchlab.core.asv_suite import Suite


def ratio_class(exp: str, name: str, ratio) -> type:
    """The asv class of one declared ratio: params are its cases' ids at the scale."""
    from benchlab.core.session import case_id_of, kinds_of

    base = Suite(exp)
    cases_of = kinds_of(experiments.load(exp))[ratio.kind][0]
    ids = [case_id_of(c) for c in cases_of(base.config)
           if fnmatch.fnmatchcase(case_id_of(c), ratio.cases)]

    def setup_cache(self):
        from benchlab.core.session import Run

        run = Run(exp, os.environ.get("BENCHLAB_SCALE", "tiny"), device=self.device,
                  config=self.config)
        return {case_id_of(c): run.measure(ratio.kind, c)["metrics"].get(ratio.metric)
                for c in run.cases(ratio.kind) if case_id_of(c) in ids}

    def track_ratio(self, cache, case):
        return cache[case]

    track_ratio.unit = "ratio"
    return type(f"{exp}_{name}", (base,), {
        "__doc__": f"{exp}.RATIOS[{name!r}]: {ratio.contender} / {ratio.reference}",
        "params": ids, "param_names": ["case"], "timeout": 1800,
        "setup_cache": setup_cache, "track_ratio": track_ratio})


for _exp in sorted(experiments.known()):
    for _name, _ratio in getattr(experiments.load(_exp), "RATIOS", {}).items():
        if _ratio.gate:
            globals()[f"{_exp}_{_name}"] = ratio_class(_exp, _name, _ratio)
