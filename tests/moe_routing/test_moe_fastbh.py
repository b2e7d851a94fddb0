"""The fast calibrated BH (ladder.Ladder via NullLayer.bh_select) equals the exact path
bh_select(NullLayer.pvalues(x)) mask for mask, including ties, caps, fill-in and edge values.

    /work/venv/bin/pytest tests/moe_routing/test_moe_fastbh.py -q
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from benchlab.moe_routing import ROUTINGS, EmpiricalNull, bh_select, route
from benchlab.moe_routing.ladder import Ladder, canonical

CAPS = ((1, 8), (0, None), (2, 4), (0, 3), (3, None))


def cases(seed):
    g = torch.Generator().manual_seed(seed)
    for trial in range(24):
        N = int(torch.randint(3, 3000, (1,), generator=g))
        E = int(torch.randint(1, 65, (1,), generator=g))
        if trial % 3 == 0:
            N = 2559  # N + 1 = 2560 = 2 E / alpha for E=64, alpha=.05: p lands on thresholds
        calib = torch.randn(1, N, E, generator=g)
        if trial % 4 == 1:
            calib = calib.to(torch.bfloat16).float()  # heavy ties in the calibration logits
        x = torch.randn(300, E, generator=g) * float(torch.rand(1, generator=g) * 3)
        x[:40] = calib[0, torch.randint(0, N, (40,), generator=g)]  # logits equal to calib ones
        x[40:50] += 3  # signals: k* > max_k
        x[50, 0], x[51, 0], x[52, 0] = math.inf, -math.inf, math.nan
        yield trial, EmpiricalNull(calib).layer(0), x


@pytest.mark.parametrize("seed", [0, 1])
def test_fast_bh_equals_exact_path_on_every_row(seed):
    checked = 0
    for trial, null, x in cases(seed):
        E = x.shape[1]
        for alpha in (0.01, 0.05, 0.1, 0.5, 1.0):
            for mn, mx in CAPS:
                mx = None if mx is None else min(mx, E)
                mn = min(mn, E if mx is None else mx)
                want = bh_select(null.pvalues(x), alpha, mn, mx)
                got = null.bh_select(x, alpha, mn, mx)
                assert torch.equal(got, want), (trial, alpha, mn, mx)
                checked += int(want.sum())
    assert checked > 10000  # real selections were compared


def test_fast_bh_before_caps_equals_statsmodels():
    g = torch.Generator().manual_seed(5)
    null = EmpiricalNull(torch.randn(1, 4000, 64, generator=g)).layer(0)
    x = torch.randn(400, 64, generator=g) + (torch.rand(400, 64, generator=g) < 0.1) * 3
    p = null.pvalues(x).double().numpy()
    for alpha in (0.01, 0.05, 0.1):
        want = torch.from_numpy(
            __import__("numpy").stack([multipletests(r, alpha, "fdr_bh")[0] for r in p]))
        assert torch.equal(null.bh_select(x, alpha, 0, None), want)


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.5])
def test_ladder_levels_are_the_coarsened_brute_force_ranks(alpha):
    """level = min{j : m <= R_j} with m counted by brute force, on logits spread over the whole
    calibration range and on the calibration logits themselves (values equal to cuts); the
    ladder holds every BH cut M_k = #{m : m / (N + 1) <= (k / E) alpha} and ends at N + 1."""
    g = torch.Generator().manual_seed(3)
    N, E = 2000, 16
    calib = torch.randn(1, N, E, generator=g)
    null = EmpiricalNull(calib).layer(0)
    ladder = Ladder.build(null.sorted, alpha)
    mk = [sum(m / (N + 1) <= k / E * alpha for m in range(1, N + 2)) for k in range(1, E + 1)]
    assert set(mk) - {0} <= set(ladder.R.tolist()) and int(ladder.R[-1]) == N + 1
    x = torch.cat([torch.randn(500, E, generator=g) * 2, calib[0]])
    m = 1 + N - (calib[0].T[None] < x[:, :, None]).sum(-1)  # brute force m, [T, E]
    want = torch.searchsorted(ladder.R, m, side="left") + 1  # min{j : m <= R_j}, 1-based
    assert torch.equal(ladder.levels(canonical(x)), want)
    assert int(want.max()) > ladder.J // 2 and int(want.min()) == 1  # many levels were hit


def test_route_uses_fast_path_and_keeps_weights():
    g = torch.Generator().manual_seed(4)
    null = EmpiricalNull(torch.randn(1, 8192, 64, generator=g)).layer(0)
    logits = torch.randn(1000, 64, generator=g)
    for name in ("bh_strict", "bh_moderate", "bh_loose", "bh_adaptive"):
        r = ROUTINGS.get(name)
        mask, w = route(logits, r, null)
        want = bh_select(null.pvalues(logits), r.alpha, r.min_k, r.max_k)
        assert torch.equal(mask, want)
        assert torch.equal(w, torch.softmax(logits / r.temperature, -1) * want)
    assert 0.05 in null._bh and null._bh[0.05] is not None  # the table was built and used


def test_one_level_ladder_one_expert_alpha_one():
    """alpha = 1 with one expert admits every rank at k = 1: a ladder of the single rank N + 1
    (no cuts to grid); the mask still equals the exact path's."""
    null = EmpiricalNull(torch.randn(1, 50, 1, generator=torch.Generator().manual_seed(6)))
    layer = null.layer(0)
    assert Ladder.build(layer.sorted, 1.0).J == 1
    x = torch.randn(20, 1)
    for alpha in (1.0, 0.5):
        for mn, mx in ((0, None), (1, 1), (0, 0)):
            assert torch.equal(layer.bh_select(x, alpha, mn, mx),
                               bh_select(layer.pvalues(x), alpha, mn, mx))


def test_signed_zeros_in_calibration_and_logits():
    """-0.0 == +0.0: a calibration logit -0.0 is a cut that a logit +0.0 (or -0.0) does not
    exceed, though -0.0 - +0.0 = -0.0 has its sign bit set."""
    g = torch.Generator().manual_seed(7)
    calib = torch.randn(1, 400, 8, generator=g).round()  # many exact zeros, as +0.0
    calib[0, ::3] *= -1  # a third of them -0.0
    null = EmpiricalNull(calib).layer(0)
    x = torch.randn(200, 8, generator=g).round()
    x[::2] *= -1
    assert bool((calib == 0).any()) and bool((x.signbit() & (x == 0)).any())
    for alpha in (0.05, 0.5, 1.0):
        for mn, mx in CAPS:
            assert torch.equal(null.bh_select(x, alpha, mn, mx),
                               bh_select(null.pvalues(x), alpha, mn, mx)), (alpha, mn, mx)


@settings(max_examples=150, deadline=None)
@given(st.integers(2, 600), st.integers(1, 24), st.integers(0, 2**31 - 1),
       st.sampled_from(["float", "bf16", "int"]), st.sampled_from([0.01, 0.05, 0.1, 0.3, 1.0]),
       st.integers(0, 8), st.integers(0, 24))
def test_fast_bh_equals_exact_path_property(N, E, seed, kind, alpha, mn, mx):
    """Any calibration (continuous, bf16-tied, integer-valued), logits drawn around and from it,
    any caps: the ladder's mask is the exact path's."""
    g = torch.Generator().manual_seed(seed)
    calib = torch.randn(1, N, E, generator=g) * 2
    calib = {"float": calib, "bf16": calib.bfloat16().float(), "int": calib.round()}[kind]
    x = torch.randn(64, E, generator=g) * 3
    x[:16] = calib[0, torch.randint(0, N, (16,), generator=g)]
    mx = min(mx, E)
    mn = min(mn, mx)
    null = EmpiricalNull(calib).layer(0)
    assert torch.equal(null.bh_select(x, alpha, mn, mx), bh_select(null.pvalues(x), alpha, mn, mx))


def test_router_sized_rows_equal_the_exact_path():
    """Router-sized (N = 8192, E = 64): ties with the calibration, rows where k* > max_k, rows
    of one repeated logit (every expert at one level: exact ranks decide), the fill-in."""
    g = torch.Generator().manual_seed(0)
    calib = torch.randn(1, 8192, 64, generator=g)
    null = EmpiricalNull(calib).layer(0)
    x = torch.randn(3000, 64, generator=g)
    x[:300] = calib[0, torch.randint(0, 8192, (300,), generator=g)]  # ties with calibration
    x[300:400, :4] += 3.0  # several significant experts
    x[400:450, :12] += 4.0  # more than max_k: the cap cuts through a level
    x[450:500] = x[450:500, :1]  # every expert the same logit
    for alpha, mn, mx in ((0.01, 1, 8), (0.01, 0, 8), (0.05, 1, 2), (0.1, 1, 8), (0.1, 4, 8)):
        want = bh_select(null.pvalues(x), alpha, mn, mx)
        assert torch.equal(null.bh_select(x, alpha, mn, mx), want), (alpha, mn, mx)
        assert (want.sum(1) > 1).any() and null._bh[alpha] is not None


def test_batched_logits_are_routed_row_by_row():
    """Logits [B, T, E] (and a view that is not contiguous) give the mask of their rows."""
    g = torch.Generator().manual_seed(2)
    null = EmpiricalNull(torch.randn(1, 500, 16, generator=g)).layer(0)
    x = torch.randn(3, 40, 16, generator=g)
    want = bh_select(null.pvalues(x.reshape(-1, 16)), 0.1, 1, 4).view(3, 40, 16)
    assert torch.equal(null.bh_select(x, 0.1, 1, 4), want)
    assert torch.equal(null.bh_select(x.transpose(0, 1), 0.1, 1, 4), want.transpose(0, 1))


def test_logits_off_the_cpu_or_another_width_take_the_exact_path():
    """A null of E experts asked about logits of another width answers with the exact path's
    error, not a kernel's out-of-bounds read."""
    null = EmpiricalNull(torch.randn(1, 100, 8, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(RuntimeError):
        null.layer(0).bh_select(torch.randn(5, 7), 0.05)
