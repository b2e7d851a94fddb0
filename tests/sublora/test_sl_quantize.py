"""Quantization of the subspace vector: uniform bins with bin means, 1-d k-means, the STE."""

import numpy as np
import pytest
import torch
from scipy.cluster.vq import kmeans2

from benchlab.sublora import quantize as q


def test_uniform_bins_brute_force():
    rng = np.random.default_rng(0)
    w = rng.standard_t(3, size=3000) * 0.01
    levels = 11
    symbols, centroids = q.uniform_bins(w, levels)
    M = np.abs(w).max()
    width = 2 * M / levels
    for i, (x, s) in enumerate(zip(w, symbols, strict=True)):
        lo = -M + s * width
        assert lo - 1e-12 <= x <= lo + width + 1e-12, i
    for k in range(levels):
        members = w[symbols == k]
        expect = members.mean() if members.size else -M + (k + 0.5) * width
        assert centroids[k] == pytest.approx(expect, rel=1e-12, abs=1e-15)
    extreme = np.argmax(np.abs(w))  # +-max|w| sits in the first or last bin, not outside
    assert symbols[extreme] == (levels - 1 if w[extreme] > 0 else 0)


def test_quantized_is_float16_exact():
    w = np.random.default_rng(1).normal(size=500)
    for method in q.METHODS:
        qq = q.quantize(w, 7, method)
        assert qq.levels == 7 and qq.symbols.shape == (500,)
        assert np.array_equal(qq.codebook, qq.codebook.astype(np.float16).astype(np.float32))
        assert np.array_equal(qq.values, qq.codebook[qq.symbols])
        assert qq.counts().sum() == 500
        assert np.abs(qq.values - w).max() <= 2 * np.abs(w).max() / 7 + 1e-3


def test_degenerate_vectors():
    zeros = q.quantize(np.zeros(10), 5)
    assert np.all(zeros.values == 0)
    assert q.quantize(np.array([0.3, -0.3]), 1).values.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="unknown quantization"):
        q.quantize(np.ones(3), 3, "random")
    with pytest.raises(ValueError, match="nan"):
        q.quantize(np.array([1.0, np.nan]), 3)


def test_lloyd_matches_scipy_kmeans2():
    rng = np.random.default_rng(2)
    w = np.concatenate([rng.normal(c, 0.05, 300) for c in (-2.0, -0.5, 0.4, 1.7)])
    init = np.array([-1.5, -0.2, 0.2, 1.0])
    labels, centroids = q.lloyd_1d(w, init, iters=200)
    ref_c, ref_labels = kmeans2(w.reshape(-1, 1), init.reshape(-1, 1), iter=200, minit="matrix")
    assert np.allclose(centroids, ref_c[:, 0], atol=1e-10)
    assert np.array_equal(labels, ref_labels)


def test_kmeans_not_worse_than_uniform():
    w = np.random.default_rng(3).laplace(size=4000)
    s_u, c_u = q.uniform_bins(w, 9)
    s_k, c_k = q.lloyd_1d(w, c_u)
    assert ((c_k[s_k] - w) ** 2).mean() <= ((c_u[s_u] - w) ** 2).mean()


def test_nearest_brute_force():
    rng = np.random.default_rng(4)
    w, c = rng.normal(size=400), rng.normal(size=6)
    assert np.array_equal(q.nearest(w, c), np.abs(w[:, None] - c[None, :]).argmin(1))


def test_straight_through_gradients():
    torch.manual_seed(0)
    w = torch.randn(50, dtype=torch.float64, requires_grad=True)
    c = torch.tensor([-1.0, 0.0, 0.7], dtype=torch.float64, requires_grad=True)
    out = q.quantize_ste(w, c)
    idx = q.nearest(w.detach().numpy(), c.detach().numpy())
    assert np.array_equal(out.detach().numpy(), c.detach().numpy()[idx])
    g = torch.randn(50, dtype=torch.float64)
    out.backward(g)
    assert torch.equal(w.grad, g)  # straight through
    expect = np.bincount(idx, weights=g.numpy(), minlength=3)
    assert np.allclose(c.grad.numpy(), expect)
    snapped = q.snap(w.detach(), c.detach())
    assert snapped.method == "qat" and np.array_equal(snapped.symbols, idx)
