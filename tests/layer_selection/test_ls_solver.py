"""Solvers against brute force (hypothesis), the MILPs, and each other; selections checked."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchlab.core.errors import BenchlabError
from benchlab.layer_selection import check_selection, solve, solver
from benchlab.layer_selection.solver import (
    Windows,
    floor_log2,
    furthest_end,
    levels_and_ends,
    prefix,
    sparse_table,
)


def brute_force(costs, values, budgets, ordered=False):
    """Best total over every assignment of disjoint intervals (or nothing) to the verifiers, by
    enumeration. ordered=True: used verifiers' intervals must follow verifier order."""
    L, M = len(costs), len(budgets)
    ivs = [(s, e, (1 << (e + 1)) - (1 << s), sum(costs[s:e + 1]), sum(values[s:e + 1]))
           for s in range(L) for e in range(s, L)]  # mask: layers s..e as bits
    best = 0

    def rec(k, used, total, last_end):
        nonlocal best
        if k == M:
            best = max(best, total)
            return
        rec(k + 1, used, total, last_end)
        for s, e, mask, cost, value in ivs:
            if cost <= budgets[k] and not used & mask and not (ordered and s <= last_end):
                rec(k + 1, used | mask, total + value, e if ordered else last_end)

    rec(0, 0, 0, -1)
    return best


instances = st.integers(1, 6).flatmap(lambda L: st.tuples(
    st.lists(st.integers(0, 9), min_size=L, max_size=L),
    st.lists(st.integers(-4, 9), min_size=L, max_size=L),
    st.lists(st.integers(0, 20), min_size=0, max_size=3)))


@settings(max_examples=3000, deadline=None)
@given(instances)
def test_exact_equals_brute_force(inst):
    costs, values, budgets = inst
    sel = solve(costs, values, budgets)
    ok, why = check_selection(costs, budgets, sel.intervals)
    assert ok, why
    assert sel.value == pytest.approx(brute_force(costs, values, budgets), abs=1e-9)
    assert sel.value == pytest.approx(sum(values[i] for i in sel.layers), abs=1e-9)


@settings(max_examples=1000, deadline=None)
@given(instances)
def test_ordered_is_the_best_ordered_selection(inst):
    costs, values, budgets = inst
    sel = solve(costs, values, budgets, "ordered")
    assert check_selection(costs, budgets, sel.intervals)[0]
    assert sel.value == pytest.approx(brute_force(costs, values, budgets, ordered=True), abs=1e-9)
    starts = [iv[0] for iv in sel.intervals if iv is not None]
    assert starts == sorted(starts)
    up = solve(costs, values, budgets, "upstream")
    assert check_selection(costs, budgets, up.intervals)[0]
    assert up.value <= sel.value + 1e-9 <= solve(costs, values, budgets).value + 2e-9


@settings(max_examples=150, deadline=None)
@given(instances)
def test_milps_equal_exact(inst):
    costs, values, budgets = inst
    exact = solve(costs, values, budgets).value
    for method in ("milp", "milp_assign"):
        sel = solve(costs, values, budgets, method)
        assert check_selection(costs, budgets, sel.intervals)[0]
        assert sel.value == pytest.approx(exact, abs=1e-7)


def test_many_verifiers_equal_budgets_vs_milp():
    rng = np.random.default_rng(0)
    for _ in range(20):
        L, M = int(rng.integers(20, 60)), int(rng.integers(1, 30))  # large M: greedy cover
        costs = rng.integers(1, 10, L).astype(float)
        values = rng.random(L)
        budgets = np.full(M, float(rng.integers(5, 30)))
        a, b = solve(costs, values, budgets), solve(costs, values, budgets, "milp")
        assert a.value == pytest.approx(b.value, rel=1e-9)
        assert check_selection(costs, budgets, a.intervals)[0]


def test_unequal_budgets_many_verifiers_vs_milp():
    rng = np.random.default_rng(1)
    for i in range(12):
        L = int(rng.integers(15, 40))
        costs = rng.integers(1, 10, L).astype(float)
        values = rng.random(L)
        budgets = rng.integers(3, 25, 6).astype(float)
        a, b = solve(costs, values, budgets), solve(costs, values, budgets, "milp")
        assert a.value == pytest.approx(b.value, rel=1e-9)
        if i < 3:  # the per-verifier formulation needs no Hall's theorem, but is slower
            small = slice(0, 12)
            c = solve(costs[small], values[small], budgets[:4])
            d = solve(costs[small], values[small], budgets[:4], "milp_assign")
            assert c.value == pytest.approx(d.value, rel=1e-9)


def test_ordered_dp_loses_when_order_is_wrong():
    # a big valuable block first, but verifier 0 is the small one: fixed order must waste it
    costs, values, budgets = [5, 5, 1, 1], [10, 10, 1, 1], [2, 10]
    assert solve(costs, values, budgets).value == 22
    assert solve(costs, values, budgets, "ordered").value == 20
    # upstream: an unused verifier zeroes the others; here verifier 1 cannot fit anything
    assert solve([5, 5], [1, 1], [5, 0.5], "ordered").value == 1
    assert solve([5, 5], [1, 1], [5, 0.5], "upstream").value == 0


def test_intervals_follow_verifier_budgets():
    sel = solve([3, 1, 2, 4], [5, 1, 1, 6], [4, 3])
    assert sel.value == 11 and sel.intervals == ((3, 3), (0, 0))
    assert solve([1], [1], []).intervals == ()
    assert solve([5, 5], [1, 1], [1, 2]).value == 0  # nothing fits anywhere
    assert solve([0, 0, 3], [1, 1, 1], [0]).intervals == ((0, 1),)  # free layers fit budget 0


def test_budget_levels_merge_indistinguishable():
    C = prefix(np.array([2.0, 2, 2, 2]))
    # 2 and 3 both admit only single layers: one level; 0.5 fits nothing and is dropped
    levels = levels_and_ends(C, np.array([3.0, 2.0, 0.5, 4.0]))[0]
    assert levels == [(4.0, [3]), (2.0, [0, 1])]
    np.testing.assert_array_equal(furthest_end(C, 4.0), [2, 3, 4, 4])


def test_check_selection_catches_bad_selections():
    costs, budgets = [1, 1, 1], [2, 2]
    assert not check_selection(costs, budgets, [(0, 1), (1, 2)])[0]  # overlap
    assert not check_selection(costs, budgets, [(0, 2), None])[0]  # over budget
    assert not check_selection(costs, budgets, [(2, 3), None])[0]  # out of range
    assert not check_selection(costs, budgets, [(0, 0)])[0]  # wrong length
    assert check_selection(costs, budgets, [(2, 2), (0, 1)])[0]


@pytest.mark.parametrize("args, field", [
    (([1, -1], [1, 1], [1]), "costs"),
    (([1, 1], [1], [1]), "values"),
    (([1, 1], [1, 1], [-2]), "budgets"),
    (([1, np.nan], [1, 1], [1]), "costs"),
])
def test_bad_input_one_line(args, field):
    with pytest.raises(BenchlabError, match=f"^solve: {field}: ") as e:
        solve(*args)
    assert "\n" not in str(e.value)


def test_unknown_method():
    with pytest.raises(BenchlabError, match="method"):
        solve([1], [1], [1], "greedy")


def test_state_limit_is_an_error_not_a_hang():
    costs = np.ones(400)
    budgets = np.arange(1, 25, dtype=float)  # 24 distinct levels: 2^24 states
    with pytest.raises(BenchlabError, match="milp"):
        solve(costs, np.ones(400), budgets)
    # ... unless the largest verifiers alone can take every layer (values >= 0): greedy cover
    sel = solve(np.ones(400), np.ones(400), np.append(budgets, [400.0]))
    assert sel.value == 400 and sel.intervals[-1] == (0, 399)


def test_exhaustive_tiny_grid():
    """Every instance on a small grid (all cost/value patterns of length 3, budgets pairs)."""
    for costs in itertools.product([1, 2], repeat=3):
        for values in itertools.product([0, 1, 3], repeat=3):
            for budgets in ([1, 2], [3, 1], [2, 2], [4]):
                assert solve(costs, values, budgets).value == brute_force(costs, values, budgets)


def test_windows_and_ends_vectorized_match_one_budget_at_a_time():
    rng = np.random.default_rng(2)
    for _ in range(50):
        L = int(rng.integers(1, 40))
        C = prefix(rng.integers(0, 6, L).astype(float))
        budgets = rng.integers(0, 25, 4).astype(float)
        rows = furthest_end(C, budgets)
        for b, row in zip(budgets, rows, strict=True):
            np.testing.assert_array_equal(row, furthest_end(C, b))
            assert all(C[q] - C[p] <= b and (q == L or C[q + 1] - C[p] > b)
                       for p, q in enumerate(row))
        h = rng.normal(size=L + 1)
        win = Windows(rows)
        got = win.max(sparse_table(h, win.levels))  # (budgets, L): every row reads one h
        for j, row in enumerate(rows):  # brute-force window maxima (-inf when empty)
            want = [h[p + 1: q + 1].max() if q > p else -np.inf for p, q in enumerate(row)]
            np.testing.assert_array_equal(got[j], want)


def test_floor_log2_is_exact():
    k, pow2 = floor_log2(5000)
    assert k[0] == 0 and pow2[0] == 0
    assert all(k[i] == i.bit_length() - 1 and pow2[i] == 1 << k[i] for i in range(1, 5001))


def test_fill_in_chunks_equals_one_gather(monkeypatch):
    rng = np.random.default_rng(3)
    cases = [(rng.integers(1, 6, 30).astype(float), rng.normal(0.3, 1, 30),
              rng.integers(3, 20, 7).astype(float)) for _ in range(5)]
    whole = [solve(*c) for c in cases]
    monkeypatch.setattr(solver, "GATHER_CELLS", 1)  # one state per gather
    for c, w in zip(cases, whole, strict=True):
        part = solve(*c)
        assert (part.value, part.intervals) == (w.value, w.intervals)
