"""Quantize the subspace vector w (length d) to `levels` values before it is arithmetic-coded.

Both codebooks end as float16 centroids (what the message sends, so the evaluated model uses
exactly `Quantized.values`):
- `uniform`: `levels` equal-width bins over [-max|w|, max|w|]; centroid = mean of its entries
  (the midpoint when empty); symbol = bin index.
- `kmeans`: deterministic 1-d Lloyd iterations from the uniform centroids; symbol = nearest.
Quantization-aware fine-tuning uses `quantize_ste(w, centroids)` (nearest centroid forward;
straight-through dL/dw = dL/dq, each centroid the summed gradient of its entries), then `snap`.

    python -c "import numpy as np; from benchlab.sublora.quantize import quantize; \
q = quantize(np.random.default_rng(0).normal(size=1000), 11); print(q.codebook, q.counts())"
"""

from dataclasses import dataclass

import numpy as np
import torch

METHODS = ("uniform", "kmeans")


@dataclass(frozen=True)
class Quantized:
    """A quantized vector: w_hat = codebook[symbols]."""

    symbols: np.ndarray   # (d,) int64 in [0, levels)
    codebook: np.ndarray  # (levels,) float32, every entry exactly representable in float16
    method: str           # "uniform", "kmeans" or "qat"

    @property
    def levels(self) -> int:
        return int(self.codebook.size)

    @property
    def values(self) -> np.ndarray:
        """(d,) float32: the dequantized vector the compressed model uses."""
        return self.codebook[self.symbols]

    def counts(self) -> np.ndarray:
        """(levels,) int64 symbol counts (the arithmetic coder's static model)."""
        return np.bincount(self.symbols, minlength=self.levels).astype(np.int64)


def to_float16(x) -> np.ndarray:
    """Round to float16 and back to float32: the values a float16 message carries."""
    return np.asarray(x, dtype=np.float64).astype(np.float16).astype(np.float32)


def _as_vector(w) -> np.ndarray:
    if isinstance(w, torch.Tensor):
        w = w.detach().cpu().double().numpy()
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(w)):
        raise ValueError("cannot quantize a vector with nan or inf entries")
    return w


def uniform_bins(w, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """(symbols, centroids float64) with equal-width bins over [-max|w|, max|w|] and bin means."""
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    w = _as_vector(w)
    largest = float(np.abs(w).max()) if w.size else 0.0
    edges = np.linspace(-largest, largest, levels + 1)
    # Interior edges only: entries equal to +max land in the last bin, -max in the first.
    symbols = np.clip(np.searchsorted(edges[1:-1], w, side="right"), 0, levels - 1)
    sums = np.bincount(symbols, weights=w, minlength=levels)
    counts = np.bincount(symbols, minlength=levels)
    mids = (edges[:-1] + edges[1:]) / 2
    centroids = np.where(counts > 0, sums / np.maximum(counts, 1), mids)
    return symbols.astype(np.int64), centroids


def nearest(w, centroids) -> np.ndarray:
    """(d,) int64 index of the nearest centroid (ties to the lower index)."""
    w = _as_vector(w)
    c = np.asarray(centroids, dtype=np.float64)
    order = np.argsort(c, kind="stable")
    cs = c[order]
    # Between sorted centroids the boundary is their midpoint; ties go to the lower centroid.
    idx = np.searchsorted((cs[:-1] + cs[1:]) / 2, w, side="left")
    return order[idx].astype(np.int64)


def lloyd_1d(w, init, iters: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """1-d k-means (Lloyd) from `init` centroids: (labels, centroids float64); stops when the
    assignment no longer changes; an empty cluster keeps its centroid."""
    w = _as_vector(w)
    c = np.asarray(init, dtype=np.float64).copy()
    labels = nearest(w, c)
    for _ in range(iters):
        sums = np.bincount(labels, weights=w, minlength=c.size)
        counts = np.bincount(labels, minlength=c.size)
        c = np.where(counts > 0, sums / np.maximum(counts, 1), c)
        new = nearest(w, c)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels, c


def quantize(w, levels: int, method: str = "uniform", *, iters: int = 100) -> Quantized:
    """Quantize w to `levels` float16 centroids with `method` in METHODS."""
    if method not in METHODS:
        raise ValueError(f"unknown quantization method {method!r}; choose one of {METHODS}")
    symbols, centroids = uniform_bins(w, levels)
    if method == "uniform":
        return Quantized(symbols, to_float16(centroids), "uniform")
    _, centroids = lloyd_1d(w, centroids, iters=iters)
    return snap(w, centroids, method="kmeans")


def snap(w, centroids, method: str = "qat") -> Quantized:
    """Round the centroids to float16 and assign every entry of w to its nearest one."""
    codebook = to_float16(_as_vector(centroids))
    return Quantized(nearest(w, codebook), codebook, method)


# -- quantization-aware fine-tuning ----------------------------------------------------------

class _NearestSTE(torch.autograd.Function):
    """w (d,), centroids (k,) -> (d,) nearest centroids; straight-through gradient to w, and to
    each centroid the sum of its entries' gradients."""

    @staticmethod
    def forward(ctx, w, centroids):
        idx = (w.detach()[:, None] - centroids.detach()[None, :]).abs().argmin(dim=1)  # (d,)
        ctx.save_for_backward(idx)
        ctx.k = centroids.shape[0]
        return centroids[idx]

    @staticmethod
    def backward(ctx, grad):
        (idx,) = ctx.saved_tensors
        grad_c = torch.zeros(ctx.k, dtype=grad.dtype, device=grad.device).index_add_(0, idx, grad)
        return grad, grad_c


quantize_ste = _NearestSTE.apply  # quantize_ste(w, centroids)
