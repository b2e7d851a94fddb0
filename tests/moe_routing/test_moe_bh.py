"""BH selection, p-values and routers as pure tensor functions.

    /work/venv/bin/pytest tests/moe_routing/test_moe_bh.py -q
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from benchlab.core.errors import BenchlabError
from benchlab.moe_routing import (
    ROUTINGS,
    EmpiricalNull,
    Routing,
    bh_select,
    naive_pvalues,
    route,
    topk_route,
    topp_route,
)
from benchlab.moe_routing.routers import bh_threshold_index

ALPHAS = (0.01, 0.05, 0.1, 0.2, 0.5)


@st.composite
def pvalue_vectors(draw):
    E = draw(st.integers(1, 64))
    alpha = draw(st.sampled_from(ALPHAS))
    edges = [k / E * alpha for k in range(1, E + 1)]  # exact BH thresholds: tie cases
    p = draw(st.lists(st.one_of(st.floats(0, 1), st.sampled_from(edges),
                                st.sampled_from([0.0, 1.0])), min_size=E, max_size=E))
    return np.array(p, dtype=np.float64), alpha


@settings(max_examples=500, deadline=None)
@given(pvalue_vectors())
def test_bh_select_equals_statsmodels_before_caps(case):
    p, alpha = case
    want = multipletests(p, alpha=alpha, method="fdr_bh")[0]
    got = bh_select(torch.from_numpy(p), alpha, min_k=0, max_k=None).numpy()
    assert (got == want).all(), (p, alpha)


def test_bh_select_vectorized_matches_statsmodels_on_thousands():
    rng = np.random.default_rng(0)
    # mixtures of uniform nulls and small "signal" p-values, 64 experts, 4000 tokens
    p = rng.uniform(size=(4000, 64))
    signal = rng.uniform(size=p.shape) < rng.uniform(0, 0.3, size=(4000, 1))
    p[signal] = rng.uniform(0, 1e-3, size=signal.sum())
    for alpha in (0.01, 0.05, 0.1):
        got = bh_select(torch.from_numpy(p), alpha, min_k=0).numpy()
        want = np.stack([multipletests(row, alpha=alpha, method="fdr_bh")[0] for row in p])
        assert (got == want).all()
        assert 0 < got.sum(-1).mean() < 64  # the test exercises real selections


@settings(max_examples=200, deadline=None)
@given(pvalue_vectors(), st.integers(0, 8), st.integers(0, 64))
def test_caps_are_exact(case, min_k, max_k):
    p, alpha = case
    E = p.size
    min_k, max_k = min(min_k, E), min(max(max_k, min_k), E)
    kstar = int(multipletests(p, alpha=alpha, method="fdr_bh")[0].sum())
    mask = bh_select(torch.from_numpy(p), alpha, min_k=min_k, max_k=max_k).numpy()
    assert mask.sum() == min(max(kstar, min_k), max_k)
    if mask.any() and not mask.all():  # the selected are the smallest p-values
        assert p[mask].max() <= p[~mask].min()


def test_caps_on_thousands_of_rows_both_sides_of_the_shortcut():
    """bh_select with caps decides k* from the max_k smallest p-values, except in rows with more
    than max_k p-values <= alpha (then the full step-up): both kinds of row, against statsmodels."""
    rng = np.random.default_rng(1)
    p = rng.uniform(size=(3000, 64))
    signal = rng.uniform(size=p.shape) < rng.uniform(0, 0.3, size=(3000, 1))
    p[signal] = rng.uniform(0, 0.02, size=signal.sum())
    alpha, min_k, max_k = 0.05, 1, 8
    assert ((p <= alpha).sum(1) > max_k).mean() > 0.2  # the full step-up runs in many rows
    assert ((p <= alpha).sum(1) <= max_k).mean() > 0.2
    got = bh_select(torch.from_numpy(p), alpha, min_k=min_k, max_k=max_k).numpy()
    kstar = np.array([multipletests(row, alpha=alpha, method="fdr_bh")[0].sum() for row in p])
    assert (got.sum(1) == np.clip(kstar, min_k, max_k)).all()
    order = np.argsort(p, axis=1, kind="stable")
    want = np.zeros_like(got)
    for i, k in enumerate(np.clip(kstar, min_k, max_k)):
        want[i, order[i, :k]] = True
    assert (got == want).all()


def test_threshold_index_is_the_step_up_k():
    p = torch.tensor([[0.001, 0.02, 0.03, 0.9], [0.5, 0.6, 0.7, 0.8]], dtype=torch.float64)
    # thresholds k/4 * 0.1 = .025 .05 .075 .1 -> row 0: p(3)=.03 <= .075 so k* = 3
    assert bh_threshold_index(p, 0.1).tolist() == [3, 0]


def test_bad_arguments_raise_one_line_errors():
    with pytest.raises(BenchlabError, match="alpha"):
        bh_select(torch.rand(3, 8), 0.0)
    with pytest.raises(BenchlabError, match="min_k"):
        bh_select(torch.rand(3, 8), 0.05, min_k=5, max_k=2)


def test_naive_pvalues_never_select_more_than_one_expert():
    """The seed's trap: p = 1 - softmax prob. Even logits built to favour many experts."""
    g = torch.Generator().manual_seed(0)
    logits = torch.cat([torch.randn(2000, 64, generator=g) * s for s in (0.1, 1, 5, 20)])
    logits[:100, :8] += 50  # eight experts tied at the top: still at most one selected
    for alpha in (0.01, 0.05, 0.1, 0.4):
        for T in (1.0, 2.0):
            kstar = bh_threshold_index(naive_pvalues(logits, T), alpha)
            assert kstar.max() <= 1
            mask = bh_select(naive_pvalues(logits, T), alpha, min_k=1, max_k=8)
            assert (mask.sum(-1) == 1).all()


def test_calibrated_pvalues_match_brute_force_and_are_valid():
    g = torch.Generator().manual_seed(1)
    calib = torch.randn(2, 500, 16, generator=g)
    null = EmpiricalNull(calib)
    x = torch.randn(300, 16, generator=g)
    x[0, :] = calib[1, 7, :]  # exact ties with calibration values
    p = null.layer(1).pvalues(x)
    brute = (1 + (calib[1][None, :, :] >= x[:, None, :]).sum(1)) / 501  # [T, E]
    assert torch.allclose(p, brute.float())
    # super-uniform under the null: P(p <= u) <= u (+ Monte Carlo slack)
    big = EmpiricalNull(torch.randn(1, 2000, 8, generator=g)).layer(0)
    pv = big.pvalues(torch.randn(20000, 8, generator=g))
    for u in (0.01, 0.05, 0.2, 0.5):
        assert (pv <= u).float().mean() <= u + 3 * (u * (1 - u) / pv.numel()) ** 0.5


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.2])
def test_calibrated_bh_controls_fdr_with_exchangeable_null_experts(alpha):
    """Null experts exchangeable (iid logits as in calibration), a random few experts shifted;
    realized FDR of calibrated BH before the min_k cap stays <= alpha."""
    g = torch.Generator().manual_seed(int(alpha * 1000))
    E, N, T = 64, 4000, 6000
    null = EmpiricalNull(torch.randn(1, N, E, generator=g)).layer(0)
    logits = torch.randn(T, E, generator=g)
    n_alt = torch.randint(0, 12, (T, 1), generator=g)
    ranks = torch.rand(T, E, generator=g).argsort(-1)
    alt = ranks < n_alt  # [T, E] true signals
    logits = logits + alt * 4.0
    mask = bh_select(null.pvalues(logits), alpha, min_k=0, max_k=None)
    false = (mask & ~alt).sum(-1).float()
    fdp = false / mask.sum(-1).clamp(min=1)
    se = fdp.std() / T ** 0.5
    assert fdp.mean() <= alpha + 3 * se, (fdp.mean(), alpha)
    assert mask.sum() > 0.3 * alt.sum()  # and it has power
    # all experts null: FDR = P(any selection) <= alpha
    pure = bh_select(null.pvalues(torch.randn(T, E, generator=g)), alpha, min_k=0)
    rate = pure.any(-1).float().mean()
    assert rate <= alpha + 3 * (alpha * (1 - alpha) / T) ** 0.5


def test_topk_and_topp_routers():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(50, 64, generator=g) * 3
    mask, w = topk_route(logits, 8)
    probs = torch.softmax(logits, -1)
    assert (mask.sum(-1) == 8).all()
    assert torch.equal(mask, probs >= probs.topk(8).values[:, -1:])
    assert torch.allclose(w, probs * mask)
    mask, w = topp_route(logits, 0.4, max_k=64)
    for t in range(50):  # brute force: smallest prefix of sorted probs whose mass reaches p
        s = probs[t].sort(descending=True)
        k = int((s.values.cumsum(0) < 0.4).sum()) + 1
        assert set(mask[t].nonzero().flatten().tolist()) == set(s.indices[:k].tolist())
    capped, _ = topp_route(logits, 0.99, max_k=8)
    assert capped.sum(-1).max() <= 8


def test_route_dispatches_every_named_config():
    g = torch.Generator().manual_seed(3)
    null = EmpiricalNull(torch.randn(1, 3000, 64, generator=g))
    logits = torch.randn(40, 64, generator=g)
    for name in ROUTINGS:
        mask, w = route(logits, ROUTINGS.get(name), null.layer(0))
        r = ROUTINGS.get(name)
        assert mask.shape == logits.shape and (w[~mask] == 0).all()
        assert 1 <= mask.sum(-1).min() and mask.sum(-1).max() <= (r.k if r.method == "topk"
                                                                   else r.max_k)
    with pytest.raises(BenchlabError, match="null"):
        route(logits, ROUTINGS.get("bh_moderate"), None)
    with pytest.raises(BenchlabError, match="method"):
        route(logits, Routing("x", "nope"), None)


def test_null_roundtrips_through_safetensors(tmp_path):
    null = EmpiricalNull(torch.randn(3, 100, 8), meta={"model": "m"})
    back = EmpiricalNull.load(null.save(tmp_path / "null.safetensors"))
    assert torch.equal(back.sorted, null.sorted) and back.meta["model"] == "m"
    assert back.digest() == null.digest()
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(BenchlabError, match="bad.safetensors"):
        EmpiricalNull.load(tmp_path / "bad.safetensors")


@st.composite
def router_rows(draw):
    """float32 rows [T, E] with ties, signed zeros, infinities and (sometimes) NaN."""
    T, E = draw(st.integers(1, 6)), draw(st.sampled_from([1, 3, 8, 16, 64, 72, 256, 264]))
    pool = st.one_of(st.floats(-3, 3, width=32), st.sampled_from([0.0, -0.0, 1.0, 1.0, 2.5]),
                     st.sampled_from([np.inf, -np.inf]))
    if draw(st.booleans()):
        pool = st.one_of(pool, st.just(np.nan))
    x = draw(st.lists(pool, min_size=T * E, max_size=T * E))
    return np.array(x, dtype=np.float32).reshape(T, E)


@settings(max_examples=300, deadline=None)
@given(router_rows(), st.sampled_from([-0.5, 0.0, 1.0, 2.5]), st.booleans())
def test_count_where_counts_like_a_python_loop(x, cut, above):
    from benchlab.moe_routing.routers import count_where

    want = [sum((v > cut) if above else (v <= cut) for v in row) for row in x.tolist()]
    assert count_where(torch.from_numpy(x), cut, above).tolist() == want


@settings(max_examples=300, deadline=None)
@given(router_rows(), st.integers(1, 8))
def test_largest_ranks_like_a_stable_sort_and_topk(x, k):
    from benchlab.moe_routing.routers import largest

    k = min(k, x.shape[1])
    xt = torch.from_numpy(x)
    v, i = largest(xt, k)
    np.testing.assert_array_equal(v, torch.topk(xt, k, dim=-1).values)  # NaN equals NaN
    np.testing.assert_array_equal(xt.gather(-1, i), v)
    if not np.isnan(x).any():  # descending, ties to the lower index (-0.0 == +0.0)
        order = sorted(range(x.shape[1]), key=lambda e: -x[0, e] + 0.0)  # stable on ties
        assert i[0].tolist() == order[:k]


@settings(max_examples=300, deadline=None)
@given(router_rows(), st.integers(0, 2**31 - 1), st.sampled_from([0.01, 0.05, 0.3, 1.0]),
       st.sampled_from([(1, 8), (0, None), (2, 4), (0, 3), (1, 1), (3, None), (0, 0)]))
def test_pooled_numpy_path_equals_select_prefix(x, seed, alpha, caps):
    """PooledLayer.bh_select's numpy path (routers.select_over_cuts) keeps the same experts as
    its torch path (routers.select_prefix) on rows with ties, signed zeros and infinities, with
    calibration scores that tie with them, under every cap."""
    from unittest import mock

    from benchlab.moe_routing import calibration, make_null

    T, E = x.shape
    g = np.random.default_rng(seed)
    calib = np.concatenate([g.normal(0, 1.5, (40, E)).round(1), x[:1]]).astype(np.float32)
    layer = make_null("pooled", torch.from_numpy(calib)[None]).layer(0)
    mn, mx = min(caps[0], E), min(E if caps[1] is None else caps[1], E)
    xt = torch.from_numpy(x)
    got = layer.bh_select(xt, alpha, mn, mx)
    with mock.patch.object(calibration, "as_numpy", lambda t: None):  # the torch path
        want = layer.bh_select(xt, alpha, mn, mx)
    assert torch.equal(got, want)
