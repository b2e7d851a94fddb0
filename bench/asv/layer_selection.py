"""asv benchmarks for layer selection: solve time per solver, result metrics as track_*.

    asv run --quick --bench layer_selection      # BENCHLAB_SCALE=tiny|small|paper
"""

import numpy as np

from benchlab.core.asv_suite import Suite
from benchlab.layer_selection import data, solve, speed_cases
from benchlab.layer_selection import experiment as ex
from benchlab.layer_selection.measure import measure_speed

Base = Suite("layer_selection")


def _instances(model: str, method: str = "alphaprun"):
    if not (data.shared_dir() / "cases").exists():
        raise NotImplementedError("shared layer-selection data not found")  # asv: skipped
    m = ex.model_data(model)
    ids = Base.config.case_ids or tuple(range(1, 131))
    return m, [(data.values_for(m, method, cid), ex.case_budgets(m, cid)) for cid in ids]


class Solve(Base):
    """Experiment cases (3 verifiers, unequal budgets) of one model through one solver."""

    params = (list(data.SHARED_MODELS), ["exact", "ordered"])
    param_names = ["model", "solver"]

    def setup(self, model, solver):
        self.m, self.inst = _instances(model)

    def time_solve(self, model, solver):
        for v, b in self.inst:
            solve(self.m.costs, v, b, solver)

    def track_ratio(self, model, solver):
        total = self.m.total_significance
        return float(np.mean([solve(self.m.costs, v, b, solver).value / total
                              for v, b in self.inst]))

    def track_shortfall_rate(self, model, solver):
        return float(np.mean([solve(self.m.costs, v, b, solver).value
                              < solve(self.m.costs, v, b).value * (1 - 1e-9)
                              for v, b in self.inst]))


class Scalability(Base):
    """Equal budgets of 1% of llama2_70b each, M verifiers."""

    params = ([1, 46, 96], ["exact", "ordered"])
    param_names = ["M", "solver"]

    def setup(self, M, solver):
        if not (data.shared_dir() / "cases").exists():
            raise NotImplementedError("shared layer-selection data not found")
        self.m = ex.model_data("llama2_70b")
        self.b = np.full(M, 0.01 * self.m.total_cost)

    def time_solve(self, M, solver):
        solve(self.m.costs, self.m.significance, self.b, solver)

    def track_ratio(self, M, solver):
        return solve(self.m.costs, self.m.significance, self.b, solver).value / \
            self.m.total_significance


class VersusMilp(Base):
    """Speed-up of the exact DP over scipy's MILP on the same instances, both warm, rotated
    rounds (layer_selection.measure.measure_speed), the scale's first speed case."""

    def setup_cache(self):
        _instances("opt_125m")  # skips when the shared data is absent
        return measure_speed(speed_cases(self.config)[0], self.config, self.measurer())["speedup"]

    def track_speedup(self, speedup):
        return speedup
