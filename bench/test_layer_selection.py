"""Layer selection benchmarks: model x case x value method x solver, scalability, exact vs MILP.

    pytest bench/test_layer_selection.py --bench-scale=tiny --bench-reports /tmp/ls/reports

Every solve is timed; the AlphaPrun benefit, the seed's ratio, the ratio to the best achievable
benefit and the shortfall of heuristic solvers against the exact optimum are recorded.
"""

import time

import numpy as np
import pytest

from benchlab.core import measure, time_fn
from benchlab.layer_selection import check_selection, data, solve
from benchlab.layer_selection import experiment as ex

pytestmark = pytest.mark.experiment("layer_selection")
REL = 1e-9  # float tolerance when comparing optima computed by different solvers


@pytest.fixture(scope="module", autouse=True)
def shared_data():
    if not (data.shared_dir() / "cases" / "experiment_cases.json").exists():
        pytest.skip(f"shared layer-selection data not found under {data.shared_dir()}")


def rounds_for(solver: str, config) -> int:
    return 1 if solver.startswith("milp") else config.rounds


@pytest.mark.cases("solve_cases")
def test_solve(benchmark, case, config, device, record):
    m = ex.model_data(case.model, case.source)
    b = ex.case_budgets(m, case.case_id)
    values = data.values_for(m, case.method, case.case_id)
    sel = measure(benchmark, lambda: solve(m.costs, values, b, case.solver), device,
                  warmup=1, rounds=rounds_for(case.solver, config))
    ok, why = check_selection(m.costs, b, sel.intervals)
    assert ok, why
    benefit = float(np.sum(m.significance[sel.layers])) if sel.layers else 0.0
    best = ex.best_benefit(m, tuple(b))
    exact = ex.exact_objective(m, tuple(b), case.method, case.case_id)
    assert sel.value <= exact + REL * abs(exact), "a heuristic beat the exact optimum"
    assert benefit <= best + REL * best, "a selection beat the best achievable benefit"
    gap = (exact - sel.value) / abs(exact) if exact else 0.0
    record(benefit=benefit, ratio=benefit / m.total_significance,
           ratio_to_best=benefit / best if best > 0 else 1.0, objective=sel.value,
           exact_objective=exact, gap=gap, short=int(gap > REL), valid=ok,
           used=sum(iv is not None for iv in sel.intervals))


@pytest.mark.cases("scalability_cases")
def test_scalability(benchmark, case, config, device, record):
    m = ex.model_data(case.model)
    b = np.asarray(ex.scalability_case(case.case_id)["budgets"], dtype=np.float64)
    sel = measure(benchmark, lambda: solve(m.costs, m.significance, b, case.solver), device,
                  warmup=0 if case.solver.startswith("milp") else 1,
                  rounds=rounds_for(case.solver, config))
    ok, why = check_selection(m.costs, b, sel.intervals)
    assert ok, why
    exact = ex.best_benefit(m, tuple(b))
    metrics = {"objective": sel.value, "gap": (exact - sel.value) / exact if exact else 0.0,
               "L": len(m.names)}
    if case.solver == "exact":  # ratio vs M of each value method (exact selections)
        for method in data.VALUE_METHODS:
            out = ex.evaluate(m, b, method, "exact", case.case_id)
            metrics[f"ratio_{method}"] = out.ratio
    record(**metrics)


@pytest.mark.cases("length_cases")
def test_scaling_L(benchmark, case, config, device, record):
    costs, values, b = ex.synthetic(case.L, case.M)
    sel = measure(benchmark, lambda: solve(costs, values, b, case.solver), device,
                  warmup=0 if case.solver.startswith("milp") else 1,
                  rounds=rounds_for(case.solver, config))
    assert check_selection(costs, b, sel.intervals)[0]
    exact = solve(costs, values, b).value
    record(objective=sel.value, gap=(exact - sel.value) / exact if exact else 0.0)


def _batch(m, instances, solver):
    return [solve(m.costs, v, b, solver) for v, b in instances]


@pytest.mark.cases("speed_cases")
def test_exact_vs_milp(benchmark, case, config, device, record):
    """The same instances through exact and MILP in one run: speed-up and agreement."""
    m = ex.model_data(case.model)
    cases = data.experiment_cases()[: case.n_cases]
    inst = [(data.values_for(m, meth, c["case_id"]), ex.case_budgets(m, c["case_id"]))
            for c in cases for meth in config.speed_methods]
    exact = measure(benchmark, lambda: _batch(m, inst, "exact"), device, warmup=1,
                    rounds=config.rounds)
    t_exact = min(time_fn(lambda: _batch(m, inst, "exact"), device, warmup=0, trials=3))
    t0 = time.perf_counter()
    milp = _batch(m, inst, "milp")
    t_milp = time.perf_counter() - t0
    diffs = [abs(e.value - p.value) / max(abs(p.value), 1e-300) for e, p in zip(exact, milp,
                                                                                 strict=True)]
    assert max(diffs) <= REL, f"exact and MILP optima differ by {max(diffs):.3g}"
    record(instances=len(inst), exact_s=t_exact, milp_s=t_milp, speedup=t_milp / t_exact,
           exact_ms_per_solve=1e3 * t_exact / len(inst), max_rel_diff=max(diffs))


@pytest.mark.cases("all_shared_cases")
def test_all_shared(benchmark, case, config, device, record):
    """Every shared case solved exactly: 130 cases x 4 models x 5 methods, plus 240 scalability."""
    work = []
    cases = data.experiment_cases()
    for short in data.SHARED_MODELS:
        m = ex.model_data(short)
        for c in cases:
            b = ex.case_budgets(m, c["case_id"])
            work += [(m, data.values_for(m, meth, c["case_id"]), b) for meth in data.VALUE_METHODS]
    for c in data.scalability_cases():
        m = ex.model_data(c["model_name"])
        work.append((m, m.significance, np.asarray(c["budgets"], dtype=np.float64)))
    seconds = []
    out = measure(benchmark, lambda: [solve(m.costs, v, b) for m, v, b in work], device,
                  warmup=0, rounds=1, times=seconds)
    assert all(check_selection(m.costs, b, s.intervals)[0] for (m, _, b), s in zip(work, out,
                                                                                  strict=True))
    record(instances=len(work), total_s=max(seconds))
