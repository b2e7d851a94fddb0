"""The fast calibrated BH (bh_table.BHTable via NullLayer.bh_select) equals the exact path
bh_select(NullLayer.pvalues(x)) mask for mask, including ties, caps, fill-in and edge values.

    /work/venv/bin/pytest tests/moe_routing/test_moe_fastbh.py -q
"""

import math

import pytest
import torch
from statsmodels.stats.multitest import multipletests

from benchlab.moe_routing import ROUTINGS, EmpiricalNull, bh_select, route
from benchlab.moe_routing.bh_table import BHTable
from benchlab.moe_routing.routers import smallest

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


@pytest.mark.parametrize("seed", [0, 1])
def test_fallback_smallest_equals_sorting_exact_ranks(seed):
    """The fallback of rows no tail reaches: the k smallest ranks from cell bounds plus a few
    exact counts equal a stable sort of the binary-searched ranks (ties to the lower expert)."""
    for trial, null, x in cases(seed):
        x = x - 2 * (torch.arange(len(x)) % 2)[:, None]  # half the rows far below their tails
        m = null.search_ranks(x)
        for k in {1, 2, min(8, x.shape[1]), x.shape[1]}:
            want = torch.sort(m, dim=-1, stable=True).indices[:, :k]
            assert torch.equal(smallest(m, k), want), (trial, k)
            assert torch.equal(null.smallest(x, k), want), (trial, k)


def test_fast_bh_before_caps_equals_statsmodels():
    g = torch.Generator().manual_seed(5)
    null = EmpiricalNull(torch.randn(1, 4000, 64, generator=g)).layer(0)
    x = torch.randn(400, 64, generator=g) + (torch.rand(400, 64, generator=g) < 0.1) * 3
    p = null.pvalues(x).double().numpy()
    for alpha in (0.01, 0.05, 0.1):
        want = torch.from_numpy(
            __import__("numpy").stack([multipletests(r, alpha, "fdr_bh")[0] for r in p]))
        assert torch.equal(null.bh_select(x, alpha, 0, None), want)


def test_table_keys_are_exact_ranks_in_the_tail():
    g = torch.Generator().manual_seed(3)
    calib = torch.randn(1, 2000, 16, generator=g)
    null = EmpiricalNull(calib).layer(0)
    table = BHTable.build(null.sorted, 0.05)
    assert table is not None and table.Mt >= 0.1 * 2001
    x = torch.cat([torch.randn(500, 16, generator=g) * 2, calib[0, :100]])
    key = table.keys(x)
    m = 1 + 2000 - (calib[0][None] < x[:, None]).sum(1)  # brute force m, [T, E]
    assert torch.equal(torch.where(m <= table.Mt, m, table.Mt + 1), key)


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
