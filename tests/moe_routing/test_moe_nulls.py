"""p-value definitions (nulls.py), nulls calibrated under the routing tested, null files.

Every definition is checked against statsmodels' BH on brute-force p-values (numpy/scipy
scores, counts against the calibration scores), before and after the min_k / max_k caps.

    pytest tests/moe_routing/test_moe_nulls.py -q
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax
from statsmodels.stats.multitest import multipletests

from benchlab.core.errors import BenchlabError
from benchlab.moe_routing import NULLS, ROUTINGS, EmpiricalNull, Routing, make_null, route
from benchlab.moe_routing import calibration as calibration_mod
from benchlab.moe_routing.nulls import lower_median

DEFS = [("per_expert", 1.0), ("pooled", 1.0), ("within_token", 1.0), ("prob", 2.0)]


def np_scores(x: np.ndarray, definition: str, T: float) -> np.ndarray:
    """Independent scores: numpy / scipy, the lower median as torch.median takes it."""
    if definition in ("per_expert", "pooled"):
        return x
    if definition == "within_token":
        srt = np.sort(x, -1)
        med = srt[:, (x.shape[1] - 1) // 2][:, None]
        dev = np.sort(np.abs(x - med), -1)[:, (x.shape[1] - 1) // 2][:, None]
        return (x - med) / np.maximum(dev, 1e-6)
    return softmax(x / T, axis=-1)


def brute_pvalues(calib: np.ndarray, x: np.ndarray, definition: str, T: float) -> np.ndarray:
    """p = (1 + #{z >= s}) / (n + 1) by counting; calib [N, E] of one layer, x [T, E]."""
    s, z = np_scores(x, definition, T), np_scores(calib, definition, T)
    if definition == "per_expert":
        counts = (z[None, :, :] >= s[:, None, :]).sum(1)
        n = z.shape[0]
    else:
        zs = np.sort(z.ravel())
        counts = zs.size - np.searchsorted(zs, s, side="left")
        n = zs.size
    return ((1 + counts) / (n + 1)).astype(np.float32)


def inputs(seed: int, E: int = 16, N: int = 300, T: int = 400):
    """Logits with expert-specific offsets and scales (as a router's are), token shifts, and a
    few strong tokens, so every definition selects several experts somewhere."""
    g = np.random.default_rng(seed)
    off, scale = g.normal(0, 1, E), g.uniform(0.5, 2, E)
    calib = (g.normal(0, 1, (N, E)) * scale + off + g.normal(0, 1, (N, 1))).astype(np.float32)
    x = (g.normal(0, 1, (T, E)) * scale + off + g.normal(0, 1, (T, 1))).astype(np.float32)
    x[: T // 4, : E // 3] += 4.0
    return calib, x


@pytest.mark.parametrize("definition,T", DEFS)
@pytest.mark.parametrize("alpha", [0.05, 0.3, 0.9])
def test_every_definition_is_bh_exactly_before_and_after_the_caps(definition, T, alpha):
    calib, x = inputs(int(alpha * 100))
    null = make_null(definition, torch.from_numpy(calib)[None], T).layer(0)
    p = brute_pvalues(calib, x, definition, T)
    assert np.array_equal(null.pvalues(torch.from_numpy(x)).numpy(), p)
    r = Routing("r", "bh", alpha=alpha, null=definition, temperature=T, min_k=0, max_k=16)
    mask = route(torch.from_numpy(x), r, null)[0].numpy()
    want = np.stack([multipletests(row.astype(float), alpha=alpha, method="fdr_bh")[0]
                     for row in p])
    assert np.array_equal(mask, want)
    assert 0 < want.sum(-1).mean() < 16  # real selections
    kstar = want.sum(-1)
    for mn, mx in ((1, 8), (2, 3), (1, 1)):
        r = Routing("r", "bh", alpha=alpha, null=definition, temperature=T, min_k=mn, max_k=mx)
        mask = route(torch.from_numpy(x), r, null)[0].numpy()
        k = np.clip(kstar, mn, mx)
        assert np.array_equal(mask.sum(-1), k)
        for row, m in zip(p, mask, strict=True):  # the k smallest p-values
            if m.any() and not m.all():
                assert row[m].max() <= row[~m].min()


def test_pooled_definitions_keep_a_prefix_of_the_router_ranking_per_expert_does_not():
    calib, x = inputs(7, E=64, N=500, T=2000)
    xt = torch.from_numpy(x)
    broken = {}
    for definition, T in DEFS:
        null = make_null(definition, torch.from_numpy(calib)[None], T).layer(0)
        mask = route(xt, Routing("r", "bh", alpha=0.3, null=definition, temperature=T), null)[0]
        lo = torch.where(mask, xt, torch.inf).amin(-1)
        hi = torch.where(~mask, xt, -torch.inf).amax(-1)
        broken[definition] = float((lo < hi).float().mean())  # a lower logit kept over a higher
    assert broken["pooled"] == broken["within_token"] == broken["prob"] == 0.0
    assert broken["per_expert"] > 0.2  # the defect the issue reports, shown


def test_temperature_changes_the_selection_of_bh_adaptive_only_with_the_prob_null():
    calib, x = inputs(3, E=64, N=500, T=2000)
    xt, ct = torch.from_numpy(x), torch.from_numpy(calib)[None]
    masks = {}
    for null_name in ("per_expert", "prob"):
        for T in (1.0, 2.0):
            n = make_null(null_name, ct, T).layer(0)
            masks[null_name, T] = route(xt, Routing("r", "bh", alpha=0.3, null=null_name,
                                                    temperature=T), n)[0]
    assert torch.equal(masks["per_expert", 1.0], masks["per_expert", 2.0])  # ranks ignore T
    assert (masks["prob", 1.0] != masks["prob", 2.0]).any(-1).float().mean() > 0.05
    assert ROUTINGS.get("bh_adaptive").null == "prob"


def test_renormalized_weights_sum_to_one_over_the_selection():
    x = torch.randn(50, 64, generator=torch.Generator().manual_seed(0))
    null = make_null("pooled", torch.randn(1, 400, 64), 1.0).layer(0)
    for name in ("bh_pooled_renorm", "topk_2_renorm"):
        r = ROUTINGS.get(name)
        mask, w = route(x, r, null)
        probs = torch.softmax(x, -1) * mask
        assert torch.allclose(w, probs / probs.sum(-1, keepdim=True))
        assert torch.allclose(w.sum(-1), torch.ones(50))


@pytest.mark.parametrize("kw,field", [(dict(alpha=0.0), "alpha"), (dict(alpha=1.5), "alpha"),
                                      (dict(min_k=3, max_k=2), "max_k"),
                                      (dict(null="gaussian"), "null"),
                                      (dict(temperature=0.0), "temperature")])
def test_bad_routing_is_a_one_line_error(kw, field):
    with pytest.raises(BenchlabError, match=f"routing bad: {field}") as e:
        Routing("bad", "bh", **kw)
    assert "\n" not in str(e.value)


def test_null_file_carries_metadata_and_rejects_mismatches(tmp_path, monkeypatch):
    meta = {"model_digest": "abc", "routing": {"name": "bh_pooled"}}
    for definition, T in DEFS:
        null = make_null(definition, torch.randn(3, 50, 8), T, meta)
        path = null.save(tmp_path / f"{definition}.safetensors")
        back = EmpiricalNull.load(path, {"model_digest": "abc", "layers": 3, "experts": 8,
                                         "tokens": 50, "definition": definition,
                                         "temperature": T})
        assert torch.equal(back.sorted, null.sorted) and back.digest() == null.digest()
        x = torch.randn(5, 8)
        assert torch.equal(back.layer(2).pvalues(x), null.layer(2).pvalues(x))
    path = tmp_path / "pooled.safetensors"
    for expect, field in (({"model_digest": "other"}, "model_digest"), ({"layers": 4}, "layers"),
                          ({"experts": 64}, "experts"), ({"definition": "prob"}, "definition"),
                          ({"routing": {"name": "topk_8"}}, "routing")):
        with pytest.raises(BenchlabError, match=f"pooled.safetensors: meta.{field}") as e:
            EmpiricalNull.load(path, expect)
        assert "\n" not in str(e.value)
    bad = make_null("pooled", torch.randn(2, 10, 4), 1.0)
    bad.sorted[0, 3] = float("nan")
    with pytest.raises(BenchlabError, match="NaN"):
        EmpiricalNull.load(bad.save(tmp_path / "nan.safetensors"))
    wrong = make_null("per_expert", torch.randn(2, 10, 4), 1.0)
    wrong.meta["tokens"] = 11
    with pytest.raises(BenchlabError, match="wrong.safetensors: sorted_logits: shape"):
        EmpiricalNull.load(wrong.save(tmp_path / "wrong.safetensors"))
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(BenchlabError, match="cut.safetensors: not a calibration null"):
        EmpiricalNull.load(tmp_path / "cut.safetensors")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(calibration_mod, "save_file", boom)  # a failed write keeps the old file
    with pytest.raises(OSError):
        make_null("pooled", torch.randn(3, 50, 8), 1.0).save(path)
    assert path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))  == []


def test_registry_lists_every_definition():
    assert list(NULLS) == ["per_expert", "pooled", "within_token", "prob"]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(1, 70), st.integers(0, 2**31 - 1),
       st.sampled_from(["normal", "ties", "nan"]), st.sampled_from([torch.float32, torch.float64]))
def test_lower_median_is_torch_median(rows, cols, seed, kind, dtype):
    """The numpy path (np.partition) equals torch.median, the lower median, NaN included."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=g, dtype=dtype)
    if kind == "ties":
        x = x.round()
    if kind == "nan":
        x[torch.rand(rows, cols, generator=g) < 0.1] = torch.nan
    want = x.median(-1, keepdim=True).values
    got = lower_median(x)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert torch.equal(got.isnan(), want.isnan())
    assert torch.equal(got.nan_to_num(), want.nan_to_num())
    assert torch.equal(lower_median(x.T.contiguous().T).nan_to_num(), want.nan_to_num())  # strided


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 9), st.integers(1, 70), st.integers(0, 2**31 - 1),
       st.sampled_from(["normal", "ties", "zeros", "inf", "nan"]))
def test_robust_z_is_the_two_median_formula(rows, cols, seed, kind):
    """nulls.robust_z (one sort, MAD from windows of the sorted row) equals
    (x - median) / max(median |x - median|, 1e-6) with torch.median, bit for bit, NaN included."""
    from benchlab.moe_routing.nulls import robust_z

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=g)
    if kind in ("ties", "zeros"):
        x = x.round()
    if kind == "zeros":
        x = torch.where(torch.rand(rows, cols, generator=g) < 0.5, -0.0, x)
    if kind in ("inf", "nan"):
        x[torch.rand(rows, cols, generator=g) < 0.2] = torch.inf if kind == "inf" else torch.nan
    dev = x - x.median(-1, keepdim=True).values
    want = dev / dev.abs().median(-1, keepdim=True).values.clamp(min=1e-6)
    np.testing.assert_array_equal(robust_z(x).numpy(), want.numpy())  # NaN equals NaN


@pytest.mark.parametrize("definition,T", [d for d in DEFS if d[0] != "per_expert"])
def test_pooled_kstar_is_the_step_up_count_of_statsmodels(definition, T):
    """PooledLayer.kstar (the fill-in share's k*: routers.sorted_kstar on CPU) equals the
    number of hypotheses statsmodels' BH rejects on the brute-force p-values."""
    calib, x = inputs(11)
    null = make_null(definition, torch.from_numpy(calib)[None], T).layer(0)
    p = brute_pvalues(calib, x, definition, T)
    for alpha in (0.05, 0.3):
        want = [multipletests(row.astype(float), alpha=alpha, method="fdr_bh")[0].sum()
                for row in p]
        got = null.kstar(torch.from_numpy(x), alpha)
        assert got.tolist() == want and 0 < np.mean(want) < 16
