"""MV-BCS solvers: pick disjoint contiguous layer intervals, one per verifier, within budgets.

    python -c "from benchlab.layer_selection import solve; print(solve([3,1,2,4],[5,1,1,6],[4,3]))"

L layers (costs c_i >= 0, values v_i), M verifiers (budgets B_k); each verifier gets at most one
interval [s, e] (inclusive), intervals disjoint, cost(s, e) <= B_k.

`exact`: a DP along the layers whose state counts the intervals each *budget level* (group of
equal budgets) has received: f(p, n) = best value on layers p.. with n_j verifiers of level j
used. From (p, n) layer p is skipped, or [p, q-1] goes to a free verifier of level j
(q <= qmax_j(p), the furthest end within u_j), moving to (q, n + e_j). The max over q is a range
maximum of h(q) = V[q] + f(q, n + e_j) (V: prefix sums of values), answered for all p at once by
a sparse table; all states with equally many verifiers used are filled by the same numpy calls
(`fill`). States: prod_j (m_j + 1) (M + 1 for equal budgets); levels no interval can tell apart
are merged and levels below the cheapest layer dropped first. Exact for any values and budgets;
the state count grows, not L or M (2^M for M pairwise different budgets).

`ordered`: upstream's DP (verifier k's interval left of k+1's) with the missing "verifier k
unused" transition added: optimal only for that fixed order. `upstream`: the published
recurrence (no unused transition), to show its loss.
"""

import functools
import math

import numpy as np

from ..core.errors import BenchlabError
from .selection import Selection, check_inputs, furthest_end, prefix, total_value

MAX_STATES = 2_000_000  # prod(m_j + 1) * (L + 1) floats held at once
GATHER_CELLS = 2_000_000  # cells one gather of fill reads at most (a group in chunks)


def sparse_table(h: np.ndarray, levels: int, out: np.ndarray | None = None) -> np.ndarray:
    """Rows k < levels of max(h[..., i : i + 2^k]) along h's last axis (n cells), in an array
    (..., levels + 1, n + 1) whose cells past the end, and whose spare last row, are -inf
    (`out`, if given, must be -inf there: it is written in place)."""
    n = h.shape[-1]
    if out is None:
        out = np.full((*h.shape[:-1], levels + 1, n + 1), -np.inf)
    out[..., 0, :n] = h
    for k in range(1, levels):
        w = 1 << (k - 1)
        np.maximum(out[..., k - 1, : n - w], out[..., k - 1, w:n], out=out[..., k, : n - w])
    return out


@functools.lru_cache(maxsize=32)
def floor_log2(n: int) -> tuple[np.ndarray, np.ndarray]:
    """For i in 0..n: floor(log2(i)) exactly, and 2 to that power; (0, 0) for i = 0."""
    i = np.arange(n + 1)
    k = np.maximum(np.frexp(i)[1] - 1, 0)
    out = (k, np.where(i > 0, 1 << k, 0))
    for x in out:
        x.flags.writeable = False
    return out


class Windows:
    """The query windows q in [p + 1, qmax[p]] for all p (qmax (L,), or (J, L): one row per
    budget) as two cells of h's sparse table (sparse_table: `levels` rows of width = L + 2 and a
    spare row of -inf, flat), the larger of which is max(h[p+1 : qmax[p]+1]): cells (2, [J,] L).
    An empty window reads the spare row."""

    def __init__(self, qmax: np.ndarray):
        L = qmax.shape[-1]
        length = qmax - np.arange(L)  # >= 0: qmax[p] >= p
        k, pow2 = floor_log2(L)
        self.levels, self.width = int(k[length.max()]) + 1, L + 2
        row = k * self.width
        row[0] = self.levels * self.width  # the spare row
        row = row[length]
        self.cells = cells = np.empty((2, *qmax.shape), dtype=np.int64)
        np.add(row, np.arange(1, L + 1), out=cells[0])
        np.add(row, qmax + 1 - pow2[length], out=cells[1])

    def max(self, table: np.ndarray) -> np.ndarray:
        """max(h[p+1 : qmax[p]+1]) per p (-inf for empty windows) from h's sparse table."""
        return table.reshape(-1)[self.cells].max(axis=0)


def levels_and_ends(C: np.ndarray, budgets: np.ndarray) -> tuple[list, np.ndarray]:
    """Distinct usable budget levels, descending, with their verifiers (indistinguishable ones
    merged), and furthest_end of each level's budget (J, L)."""
    L = C.size - 1
    cheapest = float((C[1:] - C[:L]).min())  # levels below the cheapest layer take nothing
    us = np.array([u for u in sorted(set(budgets.tolist())) if u >= cheapest])  # ascending
    if not us.size:
        return [], np.zeros((0, L), dtype=np.int64)
    rows = furthest_end(C, us)  # one vectorized call for every level
    top = [0.0, *np.max(C[rows[1:]] - C[:L], axis=1).tolist()]  # costliest fit of each level
    level_of, merged = {}, []  # budget -> its level's budget; levels ascending
    for i, (u, t) in enumerate(zip(us.tolist(), top, strict=True)):
        if not (merged and t <= merged[-1][0]):  # else: merge u into the smaller level below
            merged.append((u, i))
        level_of[u] = merged[-1][0]
    ks: dict[float, list[int]] = {u: [] for u, _ in merged}
    for k, b in enumerate(budgets.tolist()):
        if b in level_of:
            ks[level_of[b]].append(k)
    merged.reverse()
    return [(u, ks[u]) for u, _ in merged], rows[[i for _, i in merged]]


def greedy_cover(costs: np.ndarray, qmax: np.ndarray, limit: int) -> list[tuple[int, int]] | None:
    """Fewest intervals covering every layer that fits alone (the classic greedy cover), or None
    when that takes more than `limit`. With values >= 0 and that many verifiers of the largest
    budget it is optimal: every layer any verifier could take is taken."""
    out, p = [], 0
    while p < costs.size:
        q = int(qmax[p])
        if q == p:  # layer p alone exceeds the budget
            p += 1
            continue
        if len(out) == limit:
            return None
        out.append((p, q - 1))
        p = q
    return out


@functools.lru_cache(maxsize=256)
def lattice(caps: tuple) -> tuple:
    """The DP's states (n_j verifiers of level j used, n_j <= caps[j]) numbered so that states of
    equal total used are contiguous, most used first: (succ (S, J): the state after one more of
    level j, S when level j is full; succ as tuples; groups [(a, b)] of rows; start: none used)."""
    cap = np.array(caps, dtype=np.int64)
    strides = np.cumprod(np.concatenate([[1], cap[:-1] + 1]))
    S = int(np.prod(cap + 1))
    counts = (np.arange(S)[:, None] // strides) % (cap + 1)
    used = counts.sum(axis=1)
    order = np.argsort(-used, kind="stable")  # new number -> mixed-radix number
    new = np.empty(S + 1, dtype=np.int64)
    new[order], new[S] = np.arange(S), S
    succ = np.where(counts < cap, np.arange(S)[:, None] + strides, S)
    cuts = np.flatnonzero(np.diff(used[order])) + 1
    groups = list(zip([0, *cuts.tolist()], [*cuts.tolist(), S], strict=True))
    succ = new[succ[order]]
    succ.flags.writeable = False
    return succ, tuple(map(tuple, succ.tolist())), tuple(groups), int(new[0])


def solve_exact(costs, values, budgets) -> Selection:
    costs, values, budgets = check_inputs(costs, values, budgets)
    C, V = prefix(costs), prefix(values)
    L, M = costs.size, budgets.size
    levels, qmax = levels_and_ends(C, budgets)  # qmax (J, L): furthest end per level
    if not levels:  # no verifier can take any layer
        return Selection(0.0, (None,) * M, "exact")
    if values.min() >= 0:  # enough big verifiers to cover every coverable layer?
        cover = greedy_cover(costs, qmax[0], len(levels[0][1]))
        if cover is not None:
            intervals = [None] * M
            for k, iv in zip(levels[0][1], cover, strict=False):
                intervals[k] = iv
            return Selection(total_value(values, intervals), tuple(intervals), "exact")
    caps = tuple(min(len(ks), L) for _, ks in levels)
    S = math.prod(m + 1 for m in caps)
    if S * (L + 1) > MAX_STATES:
        raise BenchlabError(f"solve: budgets: {S} DP states for {len(levels)} distinct budget "
                            "levels; use method='milp'")
    f = fill(V, qmax, caps, rising=bool(values.min() >= 0))
    _, succ, _, idx = lattice(caps)
    # walk forward from (p=0, nothing used), repeating the exact float ops of the fill
    chosen: dict[int, list[tuple[int, int]]] = {j: [] for j in range(len(levels))}
    starts = f[:, :L] != f[:, 1:]  # f[s, p] > f[s, p + 1]: in state s an interval starts at p
    p = 0
    while p < L:
        row = starts[idx, p:]
        i = int(row.argmax())
        if not row[i]:  # no interval starts at or after p
            break
        p += i
        best_val, best = -np.inf, None
        for j, q in enumerate(qmax[:, p].tolist()):
            if succ[idx][j] < S and q > p:
                seg = V[p + 1: q + 1] + f[succ[idx][j], p + 1: q + 1]
                k = int(seg.argmax())
                if seg[k] - V[p] > best_val:
                    best_val, best = seg[k] - V[p], (j, p + 1 + k)
        j, q = best
        chosen[j].append((p, q - 1))
        idx = succ[idx][j]
        p = q
    intervals: list = [None] * M
    for j, (_, ks) in enumerate(levels):
        for k, iv in zip(ks, chosen[j], strict=False):
            intervals[k] = iv
    return Selection(total_value(values, intervals), tuple(intervals), "exact")


def fill(V: np.ndarray, qmax: np.ndarray, caps: tuple, rising: bool = False) -> np.ndarray:
    """f[s, p] for every state s of lattice(caps) and p in 0..L: the best value on layers p..
    with the verifiers s used gone: f = suffix max over p of
    max_j max_{p < q <= qmax_j[p]} (V[q] + f[succ_j(s), q]) - V[p] (an interval [p, q-1] to a
    free verifier of level j, or layer p skipped).

    A group of states (equal total used) depends only on the group above it, so it is filled by
    one gather (Windows.cells) from the flat sparse tables of h = V + f of the states above; a
    full level reads state S's table, all -inf. Every float op is the per-state recurrence's (max
    is exact; max_j(a_j) - v = max_j(a_j - v) as rounding is monotone): f is bit-identical to it.
    `rising` (values >= 0, V nondecreasing) reads the all-used state's windows as V at their
    right ends, without its table: the same number."""
    succ, _, groups, _ = lattice(caps)
    S, L = succ.shape[0], V.size - 1
    win = Windows(qmax)
    depth = win.levels
    f = np.zeros((S, L + 1))
    gain = np.zeros((S, L + 1))  # last column stays 0: "skip every remaining layer"
    tables = np.full((S + 1, depth + 1, L + 2), -np.inf)  # + the spare row
    flat = tables.reshape(-1)
    offsets = (succ * tables[0].size)[:, None, :, None]  # (S, 1, J, 1) + cells (2, J, L)
    chunk = max(1, GATHER_CELLS // win.cells.size)  # rows a gather holds at once
    for a, b in groups:
        for c in range(a, b, chunk) if a > 0 else ():  # group 0 (all used): f = 0
            d = min(b, c + chunk)
            if rising and a == groups[0][1]:  # every successor is the all-used state
                ends = np.where(qmax > np.arange(L), V[qmax], -np.inf)  # (J, L)
                best = np.where((succ[c:d] < S)[:, :, None], ends, -np.inf).max(axis=1)
            else:
                best = np.take(flat, offsets[c:d] + win.cells).max(axis=(1, 2))  # (rows, L)
            np.subtract(best, V[:L], out=gain[c:d, :L])
            np.maximum.accumulate(gain[c:d, ::-1], axis=1, out=f[c:d, ::-1])
        if b == S:  # the start state: nothing reads its table
            break
        if not (rising and a == 0):
            sparse_table(V + f[a:b], depth, out=tables[a:b])
    return f


def solve_ordered(costs, values, budgets, *, unused: bool = True) -> Selection:
    """Verifiers take intervals in their given order along the layers (upstream's assumption)."""
    costs, values, budgets = check_inputs(costs, values, budgets)
    C, V = prefix(costs), prefix(values)
    L, M = costs.size, budgets.size
    g = np.zeros((M + 1, L + 1))  # g[k, p]: verifiers k.. on layers p..
    qmax = {b: furthest_end(C, b) for b in np.unique(budgets)}  # per distinct budget
    wins = {b: Windows(q) for b, q in qmax.items()}
    for k in range(M - 1, -1, -1):
        win = wins[budgets[k]]
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
        seg = (V + g[k + 1])[p + 1: qmax[budgets[k]][p] + 1]
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
    dps = {"exact": solve_exact, "ordered": solve_ordered, "upstream": solve_upstream}
    if method in ("milp", "milp_assign"):
        from . import milp  # scipy.optimize loads only when a MILP is asked for

        dps = {"milp": milp.solve_intervals, "milp_assign": milp.solve_assign}
    if method not in dps:
        raise BenchlabError(f"solve: method: unknown {method!r}; choose exact, ordered, upstream, "
                            "milp or milp_assign")
    return dps[method](costs, values, budgets)


SOLVERS = ("exact", "ordered", "upstream", "milp", "milp_assign")
