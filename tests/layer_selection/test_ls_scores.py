"""alpha_peak against weightwatcher, significance against the shared files, seed JSON formats."""

import json
import logging

import numpy as np
import pytest
import torch

from benchlab.layer_selection import data, significance_from_alphas
from benchlab.layer_selection.scores import esd, fit_alpha, model_norms, model_scores

SHARED = data.shared_dir()
needs_shared = pytest.mark.skipif(not (SHARED / "scores").exists(),
                                  reason=f"shared layer-selection data not at {SHARED}")


def heavy_tailed(shape, seed):
    """Gaussian over sqrt(uniform): a heavy-tailed ESD like trained weights."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g) / torch.rand(shape, generator=g).clamp_min(0.05) ** 0.5
    return 0.02 * w


@pytest.mark.parametrize("shape, seed", [((64, 128), 0), ((200, 150), 1), ((384, 384), 2)])
def test_fit_matches_weightwatcher_fit(shape, seed):
    from weightwatcher.WW_powerlaw import WWFit

    ev = esd(heavy_tailed(shape, seed))
    ww = WWFit(ev)  # weightwatcher's own power-law fit: every eigenvalue a candidate xmin
    mine = fit_alpha(ev, peak_factor=None)
    assert mine.alpha == pytest.approx(ww.alpha, rel=1e-9)
    assert mine.D == pytest.approx(ww.D, rel=1e-9)
    assert mine.xmin == ww.xmin
    # xmin_peak: weightwatcher's per-candidate alphas and D's, restricted the way WW sets the
    # range (peak of a 100-bin log10 histogram, upper end 1.5 x peak)
    counts, edges = np.histogram(np.log10(ev), bins=100)
    peak = 10 ** edges[np.argmax(counts)]
    Ds = np.where(ww.xmins <= 1.5 * peak, ww.Ds, np.inf)
    assert fit_alpha(ev).alpha == pytest.approx(ww.alphas[np.argmin(Ds)], rel=1e-9)


def test_alpha_matches_weightwatcher_analyze():
    import weightwatcher as ww

    logging.disable(logging.WARNING)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(96, 64), torch.nn.Linear(64, 128))
    with torch.no_grad():
        for i, m in enumerate(net):
            m.weight.copy_(heavy_tailed(tuple(m.weight.shape), 10 + i))
    details = ww.WeightWatcher(model=net).analyze(randomize=False, mp_fit=False)
    logging.disable(logging.NOTSET)
    for alpha, m in zip(details["alpha"], net, strict=True):
        # WW takes eigenvalues from its own SVD; the fits agree to float32 rounding
        assert fit_alpha(esd(m.weight), peak_factor=None).alpha == pytest.approx(alpha, rel=1e-4)


def test_fit_recovers_a_power_law():
    rng = np.random.default_rng(0)
    x = (1 - rng.random(5000)) ** (-1 / 2.0)  # Pareto tail, density exponent alpha = 3
    assert fit_alpha(x, peak_factor=None).alpha == pytest.approx(3.0, abs=0.15)


@needs_shared
@pytest.mark.parametrize("name", ["opt125m", "llama2-7b", "llama2-13b", "llama2-70b"])
def test_significance_reproduces_shared_scores(name):
    """The mapping is affine-invariant in alpha, so alphas rebuilt from the file's unclamped
    ratios (t in [0, 1] per block; clamped blocks chosen to meet the sparsity constraint) must
    give back every pruning ratio in the file."""
    d = json.loads((SHARED / "scores" / f"{name}_scores.json").read_text())
    eps, S, per = d["epsilon"], d["sparsity_ratio"], d["layers_per_block"]
    r = np.array([b["avg_pruning_ratio"] for b in d["blocks"]])
    eta = r.min() / (1 - eps)
    t = (r / eta - (1 - eps)) / (2 * eps)
    clamped = r >= 1
    need = (S * r.size / eta - (1 - eps) * r.size) / (2 * eps) - t[~clamped].sum()
    fill = (need - 1) / (clamped.sum() - 1)
    assert (1 / eta - (1 - eps)) / (2 * eps) <= fill <= 1  # really clamped, not above max
    t[clamped] = fill
    t[np.flatnonzero(clamped)[0]] = 1.0
    alphas = 1.5 + 2.0 * np.repeat(t, per)  # any positive affine map of t
    n = [lay["num_parameters"] for lay in d["layers"]]
    sig = significance_from_alphas(alphas, n, per, S, eps)
    want = np.array([lay["pruning_ratio"] for lay in d["layers"]])
    np.testing.assert_allclose(sig.pruning_ratio, want, atol=2e-6)
    np.testing.assert_allclose(sig.significance,
                               [lay["significance_score"] for lay in d["layers"]], atol=2e-6)


def test_significance_properties():
    rng = np.random.default_rng(0)
    alphas, n = rng.uniform(2, 6, 24), np.tile([1, 1, 1, 1, 4, 4], 4) * 100.0
    sig = significance_from_alphas(alphas, n, 6, 0.5, 0.2)
    blocks = alphas.reshape(4, 6).mean(axis=1)
    np.testing.assert_allclose(sig.alphas, np.repeat(blocks, 6))
    assert np.sum(n * sig.ratios) / n.sum() == pytest.approx(0.5)
    order = np.argsort(blocks)
    assert np.all(np.diff(sig.ratios[::6][order]) > 0)  # higher alpha: pruned more
    np.testing.assert_allclose(sig.significance, 1 - np.clip(sig.ratios, 0, 1))
    with pytest.raises(ValueError):
        significance_from_alphas(alphas[:5], n[:5], 6, 0.5, 0.2)


@pytest.mark.parametrize("spec, per_block", [("opt-tiny", 6), ("llama-tiny", 7)])
def test_model_scores_and_norms_in_seed_format(tmp_path, spec, per_block):
    from benchlab import zoo

    model = zoo.build(spec)
    scores = model_scores(model, model_name=spec)
    norms = model_norms(model, model_name=spec)
    assert scores["layers_per_block"] == per_block
    assert len(scores["layers"]) == per_block * model.config.num_hidden_layers
    assert scores["layers"][0]["name"] == "0.self_attn.q_proj"
    if (SHARED / "scores").exists():  # same fields as the shared files, nothing more or less
        ref = json.loads((SHARED / "scores" / "opt125m_scores.json").read_text())
        assert set(scores) == set(ref)
        assert set(scores["layers"][0]) == set(ref["layers"][0])
        assert set(scores["blocks"][0]) == set(ref["blocks"][0])
        assert set(scores["metadata"]) == set(ref["metadata"])
        nref = json.loads((SHARED / "norms" / "opt_125m_norms.json").read_text())
        assert set(norms) == set(nref) and set(norms["layers"][0]) == set(nref["layers"][0])
    (tmp_path / "s.json").write_text(json.dumps(scores))
    (tmp_path / "n.json").write_text(json.dumps(norms))
    back = data.load(tmp_path / "s.json", tmp_path / "n.json")
    w = dict(model.named_parameters())
    q = next(v for k, v in w.items() if k.endswith("layers.0.self_attn.q_proj.weight")).detach()
    assert back.costs[0] == q.numel()
    assert back.norms["norm_2"][0] == pytest.approx(torch.linalg.norm(q).item(), rel=1e-6)
    assert back.norms["norm_1"][0] == pytest.approx(q.abs().sum().item(), rel=1e-5)
    assert back.norms["norm_inf"][0] == pytest.approx(q.abs().max().item())
    assert np.all((back.significance >= 0) & (back.significance <= 1))


@pytest.mark.skipif(not (SHARED / "cases").exists(), reason=f"shared cases not at {SHARED}")
def test_zoo_model_through_the_benchmark_path(monkeypatch):
    """The tiny benchmark's zoo path: scores and norms from weights, seed budgets rescaled."""
    from benchlab import zoo
    from benchlab.layer_selection import check_selection, instances, solve

    monkeypatch.setattr(zoo, "load", lambda name: zoo.build(name))  # untrained is enough here
    instances.model_data.cache_clear()
    try:
        m = instances.model_data("opt-tiny", "zoo")
        b = instances.case_budgets(m, 40)
        first = instances.case_budgets(m, 1)
        assert b.sum() == pytest.approx(m.total_cost / 16 * b.sum() / first.sum())
        for method in data.VALUE_METHODS:
            sel = solve(m.costs, data.values_for(m, method, 40), b)
            assert check_selection(m.costs, b, sel.intervals)[0]
    finally:
        instances.model_data.cache_clear()
