"""asv benchmarks for layer selection: solve time per solver, result metrics as track_*.

    asv run --quick --bench layer_selection      # BENCHLAB_SCALE=tiny|small|paper

The cases are the bench's (core.session.Run's cases of a kind at the scale) and every track_*
value is a metric of a record that `Run.measure(kind, case)` made, read as it is: this module
computes nothing from results. A class whose case is not at the scale (or without the shared
data) is skipped (NotImplementedError in setup).
"""


from benchlab.core.asv_suite import Suite
from benchlab.layer_selection.data import SHARED_MODELS

Base = Suite("layer_selection")
MODELS = list(SHARED_MODELS)




def _case(run, kind: str, **fields):
    """The first case of `kind` at the scale whose fields match, or None."""
    return next((c for c in run.cases(kind)
                 if all(getattr(c, k) == v for k, v in fields.items())), None)


def _metrics(kind: str, wanted: dict) -> dict:
    """param -> the metrics of the record `Run.measure` made of its case (absent cases left
    out): what setup_cache hands to the track_* methods."""
    run = Base.run()
    out = {}
    for param, fields in wanted.items():
        case = _case(run, kind, **fields)
        if case is not None:
            out[param] = run.measure(kind, case)["metrics"]
    return out


def _skip_unless(cache: dict, param) -> None:
    if param not in cache:
        raise NotImplementedError(f"no such case at this scale (or no shared data): {param}")


class Solve(Base):
    """The scale's experiment cases of one model (alphaprun values, 3 verifiers, unequal
    budgets) through one solver; tracked: the first case's record."""

    params = (MODELS, ["exact", "ordered"])
    param_names = ["model", "solver"]

    def setup_cache(self):
        return _metrics("solve", {(m, s): {"model": m, "solver": s, "method": "alphaprun"}
                                  for m in MODELS for s in ("exact", "ordered")})

    def setup(self, cache, model, solver):
        from benchlab.layer_selection import instances

        _skip_unless(cache, (model, solver))
        cases = [c for c in Base.run().cases("solve") if (c.model, c.solver, c.method)
                 == (model, solver, "alphaprun")]
        self.instances = [instances.instance(c) for c in cases]

    def time_solve(self, cache, model, solver):
        from benchlab.layer_selection import solve

        for m, values, budgets in self.instances:
            solve(m.costs, values, budgets, solver)

    def track_ratio(self, cache, model, solver):
        return cache[model, solver]["ratio"]

    def track_gap(self, cache, model, solver):
        return cache[model, solver]["gap"]


class Scalability(Base):
    """The bench's scalability cases of the scale's largest scalability model (llama2_70b;
    llama2_7b at tiny): M equal budgets of 1% of the model each, from the shared scalability
    case file, through one solver."""

    params = ([1, 46, 96], ["exact", "ordered"])
    param_names = ["M", "solver"]

    def setup_cache(self):
        model = Base.config.scal_models[-1]
        return _metrics("scalability", {(M, s): {"model": model, "M": M, "solver": s}
                                        for M in (1, 46, 96) for s in ("exact", "ordered")})

    def setup(self, cache, M, solver):
        from benchlab.layer_selection import instances

        _skip_unless(cache, (M, solver))
        self.m, self.values, self.budgets = instances.instance(_case(
            Base.run(), "scalability", model=Base.config.scal_models[-1], M=M, solver=solver))

    def time_solve(self, cache, M, solver):
        from benchlab.layer_selection import solve

        solve(self.m.costs, self.values, self.budgets, solver)

    def track_objective(self, cache, M, solver):
        return cache[M, solver]["objective"]

    def track_gap(self, cache, M, solver):
        return cache[M, solver]["gap"]


class VersusMilp(Base):
    """Speed-up of the exact DP over scipy's MILP on the same instances, both warm, rotated
    rounds (layer_selection.measure.measure_speed): the scale's first speed case's record."""

    def setup_cache(self):
        run = Base.run()
        cases = run.cases("speed")
        return run.measure("speed", cases[0])["metrics"] if cases else {}

    def setup(self, cache):
        _skip_unless(cache, "speedup")

    def track_speedup(self, cache):
        return cache["speedup"]

    def track_max_rel_diff(self, cache):
        return cache["max_rel_diff"]


class VersusUpstream(Base):
    """Time of the exact DP over the upstream DP it corrects on the same instances, both warm,
    rotated rounds (layer_selection.measure.measure_upstream; goal <= 1): the record of the
    scale's upstream case of `model`."""

    params = (["opt_125m", "llama2_7b", "llama2_70b"],)
    param_names = ["model"]

    def setup_cache(self):
        return _metrics("upstream", {m: {"model": m} for m in self.params[0]})

    def setup(self, cache, model):
        _skip_unless(cache, model)

    def track_exact_vs_upstream(self, cache, model):
        return cache[model]["exact_vs_upstream"]

    def track_upstream_short(self, cache, model):
        return cache[model]["upstream_short"]
