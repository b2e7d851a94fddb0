"""MV-BCS solvers: pick disjoint contiguous layer intervals, one per verifier, within budgets.

    python -c "from benchlab.layer_selection import solve; print(solve([3,1,2,4],[5,1,1,6],[4,3]))"

L layers with costs c_i >= 0 and values v_i, M verifiers with budgets B_k. Each verifier gets at
most one interval [s, e] (inclusive); intervals are disjoint; cost(s, e) <= B_k.

`exact` is a DP along the layers whose state counts how many intervals each *budget level* (group
of equal budgets) has received: f(p, n) = best value on layers p.. with n_j verifiers of level j
already used. From (p, n) either layer p is skipped, or an interval [p, q-1] goes to a free
verifier of level j (q <= qmax_j(p), the furthest end within u_j) and we move to (q, n + e_j).
The inner max over q is a range maximum of h(q) = V[q] + f(q, n + e_j) (V = prefix sums of
values), answered for all p at once by a sparse table, so each state costs O(L log L) numpy work.
States: prod_j (m_j + 1); with equal budgets (the scalability cases) it is M + 1. Levels that no
interval can tell apart (no interval cost in (u_{j+1}, u_j]) are merged first, and levels below
the cheapest layer dropped, which keeps the state small. Exact for any values (negative too), any
budgets; the state count, not L or M, is what grows (2^M for M pairwise different budgets).

`ordered` is the upstream DP (verifier k's interval lies left of verifier k+1's) with the missing
"verifier k unused" transition added: a fast heuristic, optimal only for that fixed order.
`upstream` keeps the upstream recurrence as published (no unused transition), to show its loss.
"""

import numpy as np

from ..core.errors import BenchlabError
from .selection import (  # noqa: F401  (re-exported: check_selection, interval_cost)
    Selection,
    check_inputs,
    check_selection,
    furthest_end,
    interval_cost,
    prefix,
    total_value,
)

MAX_STATES = 2_000_000  # prod(m_j + 1) * (L + 1) floats held at once


def sparse_table(h: np.ndarray, levels: int) -> np.ndarray:
    """Row k holds max(h[i : i + 2^k]) for k < levels; out-of-range cells are -inf."""
    n = h.size
    table = np.full((max(1, levels), n), -np.inf)
    table[0] = h
    for k in range(1, levels):
        w = 1 << (k - 1)
        table[k, : n - w] = np.maximum(table[k - 1, : n - w], table[k - 1, w:])
    return table


class Windows:
    """The query windows q in [p + 1, qmax[p]] for all p, precomputed for repeated range maxima."""

    def __init__(self, qmax: np.ndarray):
        L = qmax.size
        self.lo = np.arange(1, L + 1)
        length = qmax - self.lo + 1
        self.ok = length > 0
        self.k = np.zeros(L, dtype=np.int64)
        self.k[self.ok] = np.floor(np.log2(length[self.ok])).astype(np.int64)
        self.right = np.where(self.ok, qmax - (1 << self.k) + 1, 0)
        self.lo = np.where(self.ok, self.lo, 0)
        self.levels = int(self.k.max()) + 1

    def max(self, table: np.ndarray) -> np.ndarray:
        """max(h[p+1 : qmax[p]+1]) per p from h's sparse table; -inf for empty windows."""
        out = np.maximum(table[self.k, self.lo], table[self.k, self.right])
        return np.where(self.ok, out, -np.inf)


def budget_levels(C: np.ndarray, budgets: np.ndarray) -> list[tuple[float, list[int]]]:
    """Distinct usable budget levels, descending, with their verifiers; indistinguishable merged."""
    L = C.size - 1
    order = sorted(range(budgets.size), key=lambda k: (-budgets[k], k))
    levels: list[tuple[float, list[int]]] = []
    for k in order:
        if levels and levels[-1][0] == budgets[k]:
            levels[-1][1].append(k)
        else:
            levels.append((float(budgets[k]), [k]))
    p = np.arange(L)
    cheapest = float(np.min(C[1:] - C[:L]))
    levels = [lv for lv in levels if lv[0] >= cheapest]
    merged: list[tuple[float, list[int]]] = []
    for u, ks in reversed(levels):  # ascending budgets; merge into the smaller level below
        if merged:
            top = np.max(C[furthest_end(C, u)] - C[p])  # costliest interval that fits u
            if top <= merged[-1][0]:
                merged[-1] = (merged[-1][0], merged[-1][1] + ks)
                continue
        merged.append((u, ks))
    return [(u, sorted(ks)) for u, ks in reversed(merged)]


def greedy_cover(costs: np.ndarray, qmax: np.ndarray) -> list[tuple[int, int]]:
    """Fewest intervals covering every layer that fits alone (left to right, each as long as
    qmax allows: the classic greedy cover). With values >= 0 and at least this many verifiers of
    the largest budget, taking all of them is optimal: every layer any verifier could take is."""
    out, p, L = [], 0, costs.size
    while p < L:
        if qmax[p] <= p:  # layer p alone exceeds the budget
            p += 1
            continue
        out.append((p, int(qmax[p]) - 1))
        p = int(qmax[p])
    return out


def solve_exact(costs, values, budgets) -> Selection:
    costs, values, budgets = check_inputs(costs, values, budgets)
    C, V = prefix(costs), prefix(values)
    L, M = costs.size, budgets.size
    levels = budget_levels(C, budgets)
    caps = [min(len(ks), L) for _, ks in levels]
    strides = np.cumprod([1] + [m + 1 for m in caps])
    S = int(strides[-1])
    qmax = [furthest_end(C, u) for u, _ in levels]
    if levels and values.min() >= 0:  # enough big verifiers to cover every coverable layer?
        cover = greedy_cover(costs, qmax[0])
        if len(cover) <= len(levels[0][1]):
            intervals = [None] * M
            for k, iv in zip(levels[0][1], cover, strict=False):
                intervals[k] = iv
            return Selection(total_value(values, intervals), tuple(intervals), "exact")
    if S * (L + 1) > MAX_STATES:
        raise BenchlabError(f"solve: budgets: {S} DP states for {len(levels)} distinct budget "
                            "levels; use method='milp'")
    wins = [Windows(q) for q in qmax]
    depth = max((w.levels for w in wins), default=1)
    f = np.zeros((S, L + 1))
    tables: dict[int, np.ndarray] = {}
    counts = np.zeros((S, len(levels)), dtype=int)
    for j, m in enumerate(caps):
        counts[:, j] = (np.arange(S) // strides[j]) % (m + 1)
    for idx in range(S - 1, -1, -1):  # successors idx + stride_j are done before idx
        T = np.full(L, -np.inf)
        for j in range(len(levels)):
            if counts[idx, j] < caps[j]:
                nxt = idx + int(strides[j])
                T = np.maximum(T, wins[j].max(tables[nxt]) - V[:L])
        f[idx] = np.maximum.accumulate(np.append(T, 0.0)[::-1])[::-1]
        if idx > 0:
            tables[idx] = sparse_table(V + f[idx], depth)
    # walk forward from (p=0, nothing used), repeating the exact float ops of the fill
    chosen: dict[int, list[tuple[int, int]]] = {j: [] for j in range(len(levels))}
    p, idx = 0, 0
    while p < L:
        if f[idx, p] == f[idx, p + 1]:
            p += 1
            continue
        best_val, best = -np.inf, None
        for j in range(len(levels)):
            if counts[idx, j] < caps[j] and qmax[j][p] >= p + 1:
                nxt = idx + int(strides[j])
                seg = (V + f[nxt])[p + 1: qmax[j][p] + 1]
                k = int(np.argmax(seg))
                if seg[k] - V[p] > best_val:
                    best_val, best = seg[k] - V[p], (j, p + 1 + k)
        j, q = best
        chosen[j].append((p, q - 1))
        idx += int(strides[j])
        p = q
    intervals: list = [None] * M
    for j, (_, ks) in enumerate(levels):
        for k, iv in zip(ks, chosen[j], strict=False):
            intervals[k] = iv
    return Selection(total_value(values, intervals), tuple(intervals), "exact")


def solve_ordered(costs, values, budgets, *, unused: bool = True) -> Selection:
    """Verifiers take intervals in their given order along the layers (upstream's assumption)."""
    costs, values, budgets = check_inputs(costs, values, budgets)
    C, V = prefix(costs), prefix(values)
    L, M = costs.size, budgets.size
    g = np.zeros((M + 1, L + 1))  # g[k, p]: verifiers k.. on layers p..
    qcache, wcache = {}, {}
    for b in np.unique(budgets):
        qcache[b] = furthest_end(C, b)
        wcache[b] = Windows(qcache[b])
    qmax = [qcache[b] for b in budgets]
    for k in range(M - 1, -1, -1):
        win = wcache[budgets[k]]
        T = win.max(sparse_table(V + g[k + 1], win.levels)) - V[:L]
        if unused:
            T = np.maximum(T, g[k + 1, :L])
        g[k] = np.maximum.accumulate(np.append(T, 0.0)[::-1])[::-1]
    intervals: list = [None] * M
    p, k = 0, 0
    while p < L and k < M:
        if g[k, p] == g[k, p + 1]:
            p += 1
            continue
        if unused and g[k, p] == g[k + 1, p]:
            k += 1
            continue
        seg = (V + g[k + 1])[p + 1: qmax[k][p] + 1]
        q = p + 1 + int(np.argmax(seg))
        intervals[k] = (p, q - 1)
        p, k = q, k + 1
    return Selection(total_value(values, intervals), tuple(intervals),
                     "ordered" if unused else "upstream")


def solve_upstream(costs, values, budgets) -> Selection:
    """The published recurrence, D[k][i] = max(D[k][i-1], best interval of k ending at i +
    D[k-1][start]) with D[k][0] = 0: an empty verifier k zeroes everything left of it, so only
    solutions whose used verifiers are a suffix (k0..M, in order) count. It runs left to right;
    here it is the backward DP without the unused transition on the mirrored instance."""
    costs, values, budgets = check_inputs(costs, values, budgets)
    L = costs.size
    sel = solve_ordered(costs[::-1], values[::-1], budgets[::-1], unused=False)
    intervals = [None if iv is None else (L - 1 - iv[1], L - 1 - iv[0])
                 for iv in sel.intervals[::-1]]
    return Selection(total_value(values, intervals), tuple(intervals), "upstream")


def solve(costs, values, budgets, method: str = "exact") -> Selection:
    """Best selection by `method`: exact | ordered | upstream | milp | milp_assign."""
    if method == "exact":
        return solve_exact(costs, values, budgets)
    if method == "ordered":
        return solve_ordered(costs, values, budgets)
    if method == "upstream":
        return solve_upstream(costs, values, budgets)
    if method in ("milp", "milp_assign"):
        from .milp import solve_milp  # scipy.optimize loads only when a MILP is asked for

        return solve_milp(costs, values, budgets,
                          formulation="intervals" if method == "milp" else "assign")
    raise BenchlabError(f"solve: method: unknown {method!r}; choose exact, ordered, upstream, "
                        "milp or milp_assign")


SOLVERS = ("exact", "ordered", "upstream", "milp", "milp_assign")
