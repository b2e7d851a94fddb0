"""What each case kind measures: `measure_<kind>(case, config, timer) -> metrics`, read by
core.session.Run (the bench module, the CLI's `files` kind and asv measure through it).

    python -c "from benchlab.core import Timer; from benchlab.layer_selection import *; \
        from benchlab.layer_selection.measure import measure_speed; \
        print(measure_speed(speed_cases(CONFIGS['tiny'])[0], CONFIGS['tiny'], Timer()))"
"""

import numpy as np

from ..core.stats import paired_ratio, paired_ratio_ci
from ..core.timing import interleave
from . import (
    all_shared_cases,
    data,
    instances,
    length_cases,
    scalability_cases,
    seed_format,
    solve_cases,
    speed_cases,
    upstream_cases,
)
from .selection import benefit, check_selection
from .solver import solve

REL = 1e-9  # float tolerance when comparing optima computed by different solvers


def _rounds(solver: str, config) -> int:
    return 1 if solver.startswith("milp") else config.rounds


def _warmup(solver: str) -> int:
    return 0 if solver.startswith("milp") else 1


def measure_solve(case, config, timer) -> dict:
    m, values, b = instances.instance(case)
    sel = timer.measure(lambda: solve(m.costs, values, b, case.solver), warmup=1,
                        rounds=_rounds(case.solver, config))
    ok, why = check_selection(m.costs, b, sel.intervals)
    assert ok, why
    got = benefit(m.significance, sel)
    best = instances.best_benefit(m, tuple(b))
    exact = instances.exact_objective(m, tuple(b), case.method, case.case_id)
    assert sel.value <= exact + REL * abs(exact), "a heuristic beat the exact optimum"
    assert got <= best + REL * best, "a selection beat the best achievable benefit"
    gap = (exact - sel.value) / abs(exact) if exact else 0.0
    return {"benefit": got, "ratio": got / m.total_significance,
            "ratio_to_best": got / best if best > 0 else 1.0, "objective": sel.value,
            "exact_objective": exact, "gap": gap, "short": int(gap > REL), "valid": ok,
            "used": sum(iv is not None for iv in sel.intervals),
            "original_case": instances.original_case(case.case_id)}


def measure_scalability(case, config, timer) -> dict:
    """One scalability case through one solver; the exact solver in `goal_rounds` rounds, whose
    seconds (`rounds_s`) the report's M = 96 goal (<= 50 ms a solve) reads."""
    m, values, b = instances.instance(case)
    exact = case.solver == "exact"
    seconds: list[float] = []

    def run():
        return solve(m.costs, values, b, case.solver)

    sel = timer.measure(run, warmup=_warmup(case.solver), times=seconds,
                        rounds=config.goal_rounds if exact else _rounds(case.solver, config))
    if exact and not timer.enabled:  # benchmarks disabled: one cold call; the goal needs rounds
        seconds = interleave({"exact": run}, timer.device, rounds=config.goal_rounds)["exact"]
    ok, why = check_selection(m.costs, b, sel.intervals)
    assert ok, why
    best = instances.best_benefit(m, tuple(b))
    metrics = {"objective": sel.value, "gap": (best - sel.value) / best if best else 0.0,
               "L": len(m.names)}
    if exact:  # ratio vs M of each value method (exact selections); the rounds for the goal
        metrics["rounds_s"] = seconds
        metrics |= {f"ratio_{method}": instances.evaluate(m, b, method, "exact", case.case_id).ratio
                    for method in data.VALUE_METHODS}
    return metrics


def measure_length(case, config, timer) -> dict:
    costs, values, b = instances.synthetic(case.L, case.M)
    sel = timer.measure(lambda: solve(costs, values, b, case.solver),
                        warmup=_warmup(case.solver), rounds=_rounds(case.solver, config))
    assert check_selection(costs, b, sel.intervals)[0]
    exact = solve(costs, values, b).value
    return {"objective": sel.value, "gap": (exact - sel.value) / exact if exact else 0.0}


def _side_by_side(m, n_cases: int, methods, solvers, timer, rounds: int, by_item: bool):
    """The first `n_cases` experiment cases x `methods` of model m through each of `solvers`:
    one warm-up pass each, then `rounds` rotated rounds of all instances through each solver, or
    with `by_item` every instance through every solver back to back (pairs sub-millisecond solves
    closely; not against HiGHS, whose solves evict the DP's arrays from the cache).
    ({solver: seconds a round}, {solver: its selections}, instances)."""
    cases = data.experiment_cases()[:n_cases]
    inst = [(data.values_for(m, meth, c["case_id"]), instances.case_budgets(m, c["case_id"]))
            for c in cases for meth in methods]
    last = {s: [None] * len(inst) for s in solvers}

    def solver_fn(solver):
        def run(item):
            i, (values, budgets) = item
            last[solver][i] = solve(m.costs, values, budgets, solver)
        return run

    items = list(enumerate(inst))
    fns = {s: solver_fn(s) for s in solvers}
    if not by_item:
        fns = {s: (lambda f=f, xs=items: [f(x) for x in xs]) for s, f in fns.items()}
        items = None
    # with benchmarks disabled (CI's smoke) the rounds still run: a speed-up from one round
    # swung 1.5x under load, and `benchlab compare` gates these ratios by their intervals
    t = timer.side_by_side(fns, warmup=1, rounds=rounds, items=items) if timer.enabled else \
        interleave(fns, timer.device, warmup=1, rounds=rounds, items=items)
    return t, last, inst


def measure_speed(case, config, timer) -> dict:
    """The same instances through exact and MILP side by side (the warm-up keeps scipy's
    first-call start-up out); speed-up: the median of the per-round ratios (_ratio)."""
    m = instances.model_data(case.model)
    t, last, inst = _side_by_side(m, case.n_cases, config.speed_methods, ("exact", "milp"),
                                  timer, config.rounds, by_item=False)
    diffs = [abs(e.value - p.value) / max(abs(p.value), 1e-300)
             for e, p in zip(last["exact"], last["milp"], strict=True)]
    assert max(diffs) <= REL, f"exact and MILP optima differ by {max(diffs):.3g}"
    exact_s = float(np.median(t["exact"]))
    return {"instances": len(inst), "exact_s": exact_s, "milp_s": float(np.median(t["milp"])),
            **_ratio("speedup", t["milp"], t["exact"]), "rounds_timed": len(t["exact"]),
            "exact_ms_per_solve": 1e3 * exact_s / len(inst), "max_rel_diff": max(diffs)}


def _ratio(name: str, num: list[float], den: list[float]) -> dict:
    """`name`: the median over rounds of num / den (core.stats.paired_ratio); `name`_lo, _hi: its
    95% bootstrap interval, from 3 rounds on (records hold no NaN)."""
    out = {name: paired_ratio(num, den)}
    if len(num) >= 3:
        out[f"{name}_lo"], out[f"{name}_hi"] = paired_ratio_ci(num, den)
    return out


def measure_upstream(case, config, timer) -> dict:
    """Exact vs the upstream DP it corrects (issue 41) side by side in `goal_rounds` rounds:
    exact_vs_upstream = exact / upstream seconds (_ratio); each round's seconds stay in the record
    (the report's goal rows); `upstream_short`: instances where upstream's optimum is below."""
    m = instances.model_data(case.model)
    t, last, inst = _side_by_side(m, case.n_cases, config.upstream_methods,
                                  ("exact", "upstream"), timer, config.goal_rounds, by_item=True)
    pairs = list(zip(last["exact"], last["upstream"], strict=True))
    assert all(u.value <= e.value + REL * abs(e.value) for e, u in pairs), "upstream beat exact"
    return {"instances": len(inst), **_ratio("exact_vs_upstream", t["exact"], t["upstream"]),
            "rounds_timed": len(t["exact"]),
            "exact_ms_per_solve": 1e3 * float(np.median(t["exact"])) / len(inst),
            "upstream_ms_per_solve": 1e3 * float(np.median(t["upstream"])) / len(inst),
            "exact_rounds_s": list(t["exact"]), "upstream_rounds_s": list(t["upstream"]),
            "upstream_short": sum(u.value < e.value - REL * abs(e.value) for e, u in pairs)}


def measure_all_shared(case, config, timer) -> dict:
    """Every shared case solved exactly: 130 cases x 4 models x 5 methods, plus 240 scalability."""
    work = []
    cases = data.experiment_cases()
    for short in data.SHARED_MODELS:
        m = instances.model_data(short)
        for c in cases:
            b = instances.case_budgets(m, c["case_id"])
            work += [(m, data.values_for(m, meth, c["case_id"]), b) for meth in data.VALUE_METHODS]
    for c in data.scalability_cases():
        m = instances.model_data(c["model_name"])
        work.append((m, m.significance, np.asarray(c["budgets"], dtype=np.float64)))
    seconds = []
    out = timer.measure(lambda: [solve(m.costs, v, b) for m, v, b in work], warmup=0, rounds=1,
                        times=seconds)
    assert all(check_selection(m.costs, b, s.intervals)[0]
               for (m, _, b), s in zip(work, out, strict=True))
    return {"instances": len(work), "total_s": max(seconds)}


def measure_files(case, config, timer) -> dict:
    """One budget case of a model given as seed files (`benchlab layer-selection run`): each
    value method's selection by the case's solver, scored by its AlphaPrun benefit (untimed)."""
    model, cases, scal = seed_format.load_files(config)
    b = seed_format.budgets_of(model, cases, scal, case.case_id)
    out = {}
    for method in seed_format.methods_of(model):
        outcome = instances.evaluate(model, b, method, case.solver, case.case_id)
        out |= seed_format.method_metrics(method, outcome)
    return out


# kind -> (its cases at a scale, what one case measures): what core.session.Run reads
KINDS = {
    "solve": (solve_cases, measure_solve),
    "scalability": (scalability_cases, measure_scalability),
    "length": (length_cases, measure_length),
    "speed": (speed_cases, measure_speed),
    "upstream": (upstream_cases, measure_upstream),
    "all_shared": (all_shared_cases, measure_all_shared),
    # the CLI's run: cases only under a Files config
    seed_format.KIND: (seed_format.file_cases, measure_files),
}
