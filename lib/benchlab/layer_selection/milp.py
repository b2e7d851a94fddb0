"""Independent reference: MV-BCS as a mixed-integer program solved by scipy.optimize.milp (HiGHS).

    python -c "from benchlab.layer_selection import solve; print(solve([3,1],[5,1],[4],'milp'))"

Two formulations:
- "intervals": one binary x_I per interval that fits the largest budget; each layer is covered at
  most once; and for every budget level u_j (descending) the intervals costing more than u_{j+1}
  number at most the verifiers with budget >= u_j (Hall's condition for this threshold structure).
  Intervals are then matched greedily, costliest to the largest budget.
- "assign": per verifier k and layer i, y_ki (layer i goes to k) and z_ki (k's interval starts at
  i); z_ki >= y_ki - y_k,i-1, sum_i z_ki <= 1, sum_k y_ki <= 1, sum_i c_i y_ki <= B_k. No Hall's
  theorem needed: the check of the check (used in tests on small instances).
"""

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from ..core.errors import BenchlabError
from .selection import Selection, check_inputs, furthest_end, prefix, total_value

OPTIONS = {"mip_rel_gap": 0.0, "presolve": True}


def _run(c, constraints, n):
    scale = float(np.max(np.abs(c))) or 1.0  # HiGHS tolerances are absolute: work near unit size
    res = milp(c / scale, constraints=constraints, integrality=np.ones(n), bounds=Bounds(0, 1),
               options=OPTIONS)
    if res.x is None:
        raise BenchlabError(f"milp: solver: {res.message}")
    return np.round(res.x).astype(bool)


def solve_intervals(costs, values, budgets) -> Selection:
    costs, values, budgets = check_inputs(costs, values, budgets)
    C, V = prefix(costs), prefix(values)
    L, M = costs.size, budgets.size
    if M == 0 or budgets.max() < costs.min():
        return Selection(0.0, (None,) * M, "milp")
    qmax = furthest_end(C, float(budgets.max()))
    starts = np.repeat(np.arange(L), qmax - np.arange(L))
    ends = np.concatenate([np.arange(p + 1, q + 1) for p, q in enumerate(qmax)]).astype(int)
    n = starts.size  # interval s covers layers starts[s] .. ends[s]-1
    cost, gain = C[ends] - C[starts], V[ends] - V[starts]
    rows = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])
    cols = np.repeat(np.arange(n), ends - starts)
    cover = sparse.csr_array((np.ones(rows.size), (rows, cols)), shape=(L, n))
    levels = np.unique(budgets)[::-1]  # u_1 > u_2 > ...
    hall_rows = [((cost > below) & (cost <= levels[0])).astype(float)
                 for below in np.append(levels[1:], -np.inf)]
    hall_cap = np.array([(budgets >= u).sum() for u in levels], dtype=float)
    cons = [LinearConstraint(cover, -np.inf, 1.0),
            LinearConstraint(np.vstack(hall_rows), -np.inf, hall_cap)]
    x = _run(-gain, cons, n)
    picked = sorted(((cost[s], starts[s], ends[s] - 1) for s in np.flatnonzero(x)), reverse=True)
    order = sorted(range(M), key=lambda k: (-budgets[k], k))
    intervals: list = [None] * M
    for (cst, s, e), k in zip(picked, order, strict=False):
        if cst > budgets[k]:
            raise BenchlabError("milp: Hall matching failed; solver returned an infeasible set")
        intervals[k] = (int(s), int(e))
    return Selection(total_value(values, intervals), tuple(intervals), "milp")


def solve_assign(costs, values, budgets) -> Selection:
    costs, values, budgets = check_inputs(costs, values, budgets)
    L, M = costs.size, budgets.size
    if M == 0:
        return Selection(0.0, (), "milp_assign")
    n = 2 * M * L  # y[k, i] at k*L + i, z[k, i] at M*L + k*L + i
    y = np.arange(M * L).reshape(M, L)
    z = y + M * L
    A, lo, hi = [], [], []

    def row(idx, coef, lb, ub):
        r = np.zeros(n)
        r[idx] = coef
        A.append(r)
        lo.append(lb)
        hi.append(ub)

    for k in range(M):
        for i in range(L):  # z_ki - y_ki + y_k,i-1 >= 0
            idx, coef = [z[k, i], y[k, i]], [1.0, -1.0]
            if i > 0:
                idx, coef = idx + [y[k, i - 1]], coef + [1.0]
            row(idx, coef, 0.0, np.inf)
        row(z[k], 1.0, -np.inf, 1.0)
        row(y[k], costs, -np.inf, budgets[k])
    for i in range(L):
        row(y[:, i], 1.0, -np.inf, 1.0)
    c = np.concatenate([-np.tile(values, M), np.zeros(M * L)])  # z's cost nothing
    x = _run(c, [LinearConstraint(sparse.csr_array(np.array(A)), lo, hi)], n)
    ons = [np.flatnonzero(x[y[k]]) for k in range(M)]
    intervals = [(int(on[0]), int(on[-1])) if on.size else None for on in ons]
    return Selection(total_value(values, intervals), tuple(intervals), "milp_assign")

