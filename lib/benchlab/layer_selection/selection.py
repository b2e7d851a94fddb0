"""What solver.py (the DPs) and milp.py (the HiGHS references) share: the answer (Selection),
input checks, prefix sums, interval ends, and a selection's value, validity and AlphaPrun benefit.

    python -c "from benchlab.layer_selection.selection import check_selection; \
        print(check_selection([3, 1, 2], [4], [(0, 1)]))"
"""

import math
from dataclasses import dataclass

import numpy as np

from ..core.errors import BenchlabError


@dataclass(frozen=True)
class Selection:
    """A solver's answer: total value of the chosen layers and one interval per verifier."""

    value: float
    intervals: tuple  # per verifier: (start, end) inclusive, or None if unused
    method: str

    @property
    def layers(self) -> list[int]:
        return sorted(i for iv in self.intervals if iv is not None for i in range(iv[0], iv[1] + 1))


def check_inputs(costs, values, budgets) -> tuple:
    costs, values, budgets = (np.asarray(x, dtype=np.float64).ravel()
                              for x in (costs, values, budgets))
    if costs.size == 0:
        raise BenchlabError("solve: costs: empty")
    if values.size != costs.size:
        raise BenchlabError(f"solve: values: length {values.size} != {costs.size} costs")
    for name, arr in (("costs", costs), ("values", values), ("budgets", budgets)):
        if not np.isfinite(arr).all():
            raise BenchlabError(f"solve: {name}: not finite")
    for name, arr in (("costs", costs), ("budgets", budgets)):
        if np.any(arr < 0):
            raise BenchlabError(f"solve: {name}: negative at index {int(np.argmax(arr < 0))}")
    return costs, values, budgets


def prefix(x: np.ndarray) -> np.ndarray:
    out = np.zeros(x.size + 1)
    np.cumsum(x, out=out[1:])
    return out


def furthest_end(C: np.ndarray, budget) -> np.ndarray:
    """q_max[p] for p in 0..L-1: the largest q with C[q] - C[p] <= budget (q = p: nothing fits).
    A 1-D array of budgets gives one row per budget."""
    L = C.size - 1
    p = np.arange(L)
    budget = np.asarray(budget, dtype=np.float64)
    budget = budget[:, None] if budget.ndim else budget
    q = np.searchsorted(C, C[:L] + budget, side="right") - 1
    q = np.minimum(np.maximum(q, p), L)  # np.clip: the same, slower on small arrays
    Cx = np.empty(L + 2)  # C and C[L + 1] = inf: layer L + 1 never fits (np.append: slower)
    Cx[: L + 1], Cx[L + 1] = C, np.inf
    while True:  # rounding of C[p] + budget: step until C[q] - C[p] <= budget < C[q+1] - C[p]
        over = C[q] - C[:L] > budget  # never at q = p: budget >= 0
        under = Cx[q + 1] - C[:L] <= budget
        if not (over | under).any():
            return q
        q = q - over + under


def total_value(values, intervals) -> float:
    values = np.asarray(values, dtype=np.float64)
    return math.fsum(v for iv in intervals if iv is not None
                     for v in values[iv[0]: iv[1] + 1].tolist())


def check_selection(costs, budgets, intervals) -> tuple[bool, str]:
    """Is the selection valid: contiguous, in range, disjoint, each within its budget?"""
    costs = np.asarray(costs, dtype=np.float64)
    C = prefix(costs)
    if len(intervals) != len(budgets):
        return False, f"{len(intervals)} intervals for {len(budgets)} verifiers"
    used = np.zeros(costs.size, dtype=bool)
    for k, iv in enumerate(intervals):
        if iv is None:
            continue
        s, e = int(iv[0]), int(iv[1])
        if not 0 <= s <= e < costs.size:
            return False, f"verifier {k}: interval {iv} out of range"
        if used[s: e + 1].any():
            return False, f"verifier {k}: interval {iv} overlaps another"
        used[s: e + 1] = True
        cost = float(C[e + 1] - C[s])
        if cost > budgets[k]:
            return False, f"verifier {k}: cost {cost} > budget {budgets[k]}"
    return True, "valid"


def benefit(significance, selection) -> float:
    """The AlphaPrun benefit of a selection: the summed significance of its layers (0 when it
    selects none). Every benchmark, the CLI and asv score selections with this one function."""
    layers = selection.layers
    return float(np.sum(np.asarray(significance)[layers])) if layers else 0.0
