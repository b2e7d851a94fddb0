"""The PAC-Bayes bound pieces, each against an independent computation, and the saved metrics."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq
from scipy.stats import entropy

from benchlab.core.errors import BenchlabError
from benchlab.sublora import bounds as B
from benchlab.sublora import quantize as Q


def hoeffding_deviation(n, delta, log_mass):
    """The t where Hoeffding's tail exp(-2 n t^2 / delta^2) equals exp(log_mass): a root search."""
    return brentq(lambda t: -2 * n * t * t / delta**2 - log_mass, 0.0, 1e3 * delta, xtol=1e-15)


def reference_bound(risk, kl, m, s, delta, eps, union=1):
    """The bound from its two published pieces, each a Hoeffding tail inverted numerically.

    The Occam/PAC-Bayes term spends r eps over hypotheses weighted e^-KL on the m documents; the
    subsampling term spends (1 - r) eps / union on the s sampled ones; r = s / (s + m).
    """
    r = s / (s + m)
    population = hoeffding_deviation(m, delta, math.log(r * eps) - kl)
    sample = hoeffding_deviation(s, delta, math.log((1 - r) * eps / union))
    return risk + population + sample


@pytest.fixture(scope="module")
def message():
    w = np.random.default_rng(0).normal(size=1500) * 0.02
    return B.compress(Q.quantize(w, 11), side=torch.tensor([0.1, -0.4, 2.0]))


@pytest.fixture(scope="module")
def docs():
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 60, size=40)
    probs = [rng.beta(0.8, 3.0, n) for n in lengths]
    ranks = [rng.geometric(0.2, n) - 1 for n in lengths]
    return probs, ranks


def test_loss_range_is_max_minus_min():
    for V in (2, 50, 4096, 50257):
        for a in (1e-3, 0.05, 0.5, 0.99):
            f = [-math.log2((1 - a) * p + a / V) for p in (0.0, 1.0)]  # loss is monotone in p
            assert B.loss_range(a, V) == pytest.approx(max(f) - min(f), rel=1e-12)


def test_subsampling_bound_matches_formula():
    rng = np.random.default_rng(2)
    for _ in range(50):
        risk, kl = rng.uniform(0, 10), rng.uniform(0, 1e5)
        m, s = int(rng.integers(10, 10**6)), int(rng.integers(1, 10**4))
        delta, union = rng.uniform(0.5, 20), int(rng.integers(1, 10))
        got = B.subsampling_bound(risk, kl, m=m, s=s, delta=delta, eps=0.05, union=union)
        assert got == pytest.approx(reference_bound(risk, kl, m, s, delta, 0.05, union), rel=1e-12)
    with pytest.raises(ValueError):
        B.subsampling_bound(1.0, 10.0, m=100, s=0)
    with pytest.raises(ValueError):
        B.subsampling_bound(1.0, 10.0, m=100, s=5, eps=1.5)


def test_message_length(message):
    assert message.bits == (message.code_bits + message.counts_bits + message.codebook_bits
                            + message.side_bits)
    assert message.counts_bits == 11 * (1500).bit_length()
    assert message.codebook_bits == 11 * 16 and message.side_bits == 3 * 32
    assert message.prefix_free_bits == pytest.approx(message.bits + 2 * np.log2(message.bits))
    q = Q.quantize(np.random.default_rng(0).normal(size=1500) * 0.02, 11)
    ideal = 1500 * entropy(q.counts(), base=2)  # scipy's entropy of the symbol histogram
    assert 0 <= message.code_bits - ideal <= 2


def test_kl_and_extra_bits():
    assert B.kl_nats(1000.0, 7.0) == pytest.approx(1007 * np.log(2))
    assert B.prefix_free_bits(0) == 0


def test_document_level_risks_brute_force(docs):
    probs, ranks = docs
    V, alphas = 1000, (0.01, 0.1, 0.5)
    acc = B.DocumentRisks(V, alphas, topk=(1, 3))
    for p, r in zip(probs, ranks, strict=True):
        acc.add(p, r)
    for i, a in enumerate(alphas):
        per_doc = [sum(-math.log2((1 - a) * x + a / V) for x in p) / len(p) for p in probs]
        assert acc.risks()[i] == pytest.approx(sum(per_doc) / len(per_doc), rel=1e-12)
    for k in (1, 3):
        per_doc = [sum(int(x >= k) for x in r) / len(r) for r in ranks]
        assert acc.topk_errors()[k] == pytest.approx(np.mean(per_doc))
    # document level, not token level: a long document weighs as much as a short one
    token_level = np.mean(np.concatenate([-np.log2(0.9 * p + 0.1 / V) for p in probs]))
    assert acc.risks()[1] != pytest.approx(token_level, rel=1e-6)
    assert acc.n_docs == len(probs) and acc.n_tokens == sum(len(p) for p in probs)
    assert acc.raw_bpd() == pytest.approx(np.mean([-np.log2(p).mean() for p in probs]))


def test_target_stats_brute_force():
    torch.manual_seed(0)
    logits, targets = torch.randn(30, 17, dtype=torch.float64), torch.randint(0, 17, (30,))
    probs, ranks = B.target_stats(logits, targets)
    soft = torch.softmax(logits, -1)
    for t in range(30):
        assert probs[t] == pytest.approx(soft[t, targets[t]].item(), rel=1e-5)
        order = torch.argsort(logits[t], descending=True).tolist()
        assert ranks[t] == order.index(targets[t].item())


def test_bounds_metrics_and_recompute(message, docs, tmp_path):
    probs, ranks = docs
    alphas = B.DEFAULT_ALPHAS
    acc = B.DocumentRisks(4096, alphas)
    for p, r in zip(probs, ranks, strict=True):
        acc.add(p, r)
    met = B.bounds_metrics(message, acc.risks(), alphas=alphas, vocab_size=4096, m=300_000,
                           s=acc.n_docs, extra_bits=5.0, topk_errors=acc.topk_errors(),
                           raw_bpd=acc.raw_bpd(),
                           inputs={"levels": np.int64(11), "method": "uniform"})
    # independent recomputation from the stored inputs
    L = met["message_bits"]
    kl = (L + 2 * np.log2(L) + 5.0 + np.log2(len(alphas))) * np.log(2)
    assert met["kl_divergence"] == pytest.approx(kl, rel=1e-12)
    per_alpha = [reference_bound(R, kl, 300_000, acc.n_docs,
                                 np.log2(1 + (1 - a) * 4096 / a), 0.05, union=len(alphas))
                 for R, a in zip(acc.risks(), alphas, strict=True)]
    assert met["bound_value"] == pytest.approx(min(per_alpha), rel=1e-12)
    assert met["empirical_bpd"] == pytest.approx(acc.risks()[int(np.argmin(per_alpha))])
    assert met["compressed_size_bits"] == message.bits
    assert B.recompute_bound(met) == met["bound_value"]
    kl_topk = (L + 2 * np.log2(L) + 5.0) * np.log(2)
    assert met["top1_error_bound"] == pytest.approx(
        reference_bound(met["top1_error"], kl_topk, 300_000, acc.n_docs, 1.0, 0.05))
    # upstream's version pays for the grid only in the KL: a (slightly) smaller number
    loose = B.bounds_metrics(message, acc.risks(), vocab_size=4096, m=300_000, s=acc.n_docs,
                             extra_bits=5.0, grid_in_sample_term=False)
    assert loose["bound_value"] < met["bound_value"]
    assert B.recompute_bound(loose) == loose["bound_value"]

    json_path, pt_path = B.save_bounds_metrics(met, tmp_path / "run")
    from_json = B.load_bounds_metrics(json_path)
    from_pt = torch.load(pt_path, weights_only=True)
    for saved in (from_json, from_pt, B.load_bounds_metrics(pt_path)):  # numpy int saved as int
        assert B.recompute_bound(saved) == pytest.approx(met["bound_value"], rel=1e-15)
        assert saved["inputs"] == {"levels": 11, "method": "uniform"}
    with pytest.raises(BenchlabError, match="never overwritten"):
        B.save_bounds_metrics(met, tmp_path / "run")


def test_bad_inputs(message, tmp_path):
    with pytest.raises(ValueError, match="shape"):
        B.bounds_metrics(message, [1.0, 2.0], vocab_size=10, m=10, s=2, extra_bits=0)
    bad = tmp_path / "bounds_metrics.json"
    bad.write_text(json.dumps({"bound_value": 1.0}))
    with pytest.raises(BenchlabError, match="empirical_bpd: missing"):
        B.load_bounds_metrics(bad)
    bad.write_text("{not json")
    with pytest.raises(BenchlabError, match="not valid JSON"):
        B.load_bounds_metrics(bad)


def test_non_vacuous_regime():
    """With hundreds of thousands of documents and a few thousand bits the bound is informative:
    a model at 6 bits/token with V = 4096 (random guess 12 bits) gets a bound below 12."""
    msg = B.MessageLength(code_bits=4000, counts_bits=121, codebook_bits=176, side_bits=0,
                          d=1000, levels=11, n_side=0)
    risks = [6.0 + 0.2 * i for i in range(len(B.DEFAULT_ALPHAS))]
    met = B.bounds_metrics(msg, risks, vocab_size=4096, m=300_000, s=1000, extra_bits=5)
    assert met["non_vacuous"] and met["bound_value"] < 12
    small = B.bounds_metrics(msg, risks, vocab_size=4096, m=300, s=100, extra_bits=5)
    assert small["bound_value"] > met["bound_value"]  # fewer documents, looser bound


@settings(max_examples=40, deadline=None)
@given(st.floats(0, 10), st.floats(0, 1e5), st.integers(10, 10**7), st.integers(1, 10**5),
       st.floats(0.5, 20))
def test_bound_monotone(risk, kl, m, s, delta):
    """Above the risk; looser with more KL or fewer documents; tighter with more samples."""
    b = B.subsampling_bound(risk, kl, m=m, s=s, delta=delta)
    assert b > risk
    assert B.subsampling_bound(risk, kl + 10, m=m, s=s, delta=delta) > b
    assert B.subsampling_bound(risk, kl, m=2 * m, s=s, delta=delta) < b
    assert B.subsampling_bound(risk, kl, m=m, s=s, delta=delta, union=8) > b
