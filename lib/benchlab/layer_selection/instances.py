"""What the benchmarks and the seed CLI run: models, budgets, one method x solver evaluation.

    python -c "from benchlab.layer_selection import instances; print(instances.evaluate(
        instances.model_data('opt_125m'), instances.case_budgets('opt_125m', 1), 'norm_2',
        'exact'))"
"""

import functools
from dataclasses import dataclass

import numpy as np

from . import data
from .selection import benefit, check_selection
from .solver import solve


@functools.cache
def model_data(name: str, source: str = "shared") -> data.ModelData:
    """A shared model by short name, or a zoo spec whose scores and norms come from its weights."""
    if source == "shared":
        return data.load_model(name)
    from .. import zoo
    from .scores import model_norms, model_scores

    model = zoo.load(name)
    return data.from_layers(name, model_scores(model, model_name=name)["layers"],
                            model_norms(model, model_name=name)["layers"])


@functools.cache
def _experiment_cases() -> tuple:
    return tuple(data.experiment_cases())


def case_budgets(model: str | data.ModelData, case_id: int, source: str = "shared") -> np.ndarray:
    """Experiment case `case_id`'s budgets, rescaled to the model as the seed runner does."""
    m = model if isinstance(model, data.ModelData) else model_data(model, source)
    cases = _experiment_cases()
    case = next(c for c in cases if c["case_id"] == case_id)
    return np.asarray(case["budgets"], dtype=np.float64) * data.scale_factor(cases, m)


def original_case(case_id: int) -> int:
    """The original budget case an experiment case perturbs (13 originals x 10 perturbations):
    the unit of independence of every test over cases."""
    case = next(c for c in _experiment_cases() if c["case_id"] == case_id)
    return int(case.get("original_case_id", case_id))


@functools.cache
def scalability_case(case_id: int) -> dict:
    return next(c for c in data.scalability_cases() if c["case_id"] == case_id)


def instance(case) -> tuple[data.ModelData, np.ndarray, np.ndarray]:
    """(model, values, budgets) of a solve case (its method's values, the experiment case's
    rescaled budgets) or a scalability case (significance, the shared file's budgets): what the
    benchmarks and asv solve."""
    if hasattr(case, "method"):
        m = model_data(case.model, case.source)
        return m, data.values_for(m, case.method, case.case_id), case_budgets(m, case.case_id)
    m = model_data(case.model)
    return m, m.significance, np.asarray(scalability_case(case.case_id)["budgets"],
                                         dtype=np.float64)


@dataclass(frozen=True)
class Outcome:
    objective: float  # the method's own objective, as optimized
    benefit: float  # AlphaPrun benefit: summed significance of the chosen layers
    ratio: float  # benefit / model total significance (the seed's ratio)
    intervals: tuple
    valid: bool


def evaluate(model: data.ModelData, budgets, method: str, solver: str,
             case_id: int = 0) -> Outcome:
    values = data.values_for(model, method, case_id)
    sel = solve(model.costs, values, budgets, solver)
    ok, _ = check_selection(model.costs, budgets, sel.intervals)
    got = benefit(model.significance, sel)
    total = model.total_significance
    return Outcome(sel.value, got, got / total if total > 0 else 0.0, sel.intervals, ok)


@functools.cache
def best_benefit(model: data.ModelData, budgets: tuple) -> float:
    """The most significance any valid selection reaches: exact solve of the alphaprun values."""
    return solve(model.costs, model.significance, np.array(budgets), "exact").value


@functools.cache
def exact_objective(model: data.ModelData, budgets: tuple, method: str, case_id: int) -> float:
    return solve(model.costs, data.values_for(model, method, case_id), np.array(budgets)).value


def synthetic(L: int, M: int, seed: int = 0):
    """A random instance shaped like a LLaMA stack: block-periodic costs (4 attention, 3 MLP
    sublayers), values in [0, 1], M equal budgets of 2% of the total each."""
    costs = np.resize(np.array([1, 1, 1, 1, 2.7, 2.7, 2.7]) * 1e6, L)
    values = np.clip(np.random.default_rng(seed).normal(0.4, 0.3, L), 0, 1)
    return costs, values, np.full(M, 0.02 * costs.sum())
