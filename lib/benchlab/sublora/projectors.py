"""Random projectors P (D x d) for theta = theta0 + P w, each rebuilt from its own seed.

    python -c "import torch; from benchlab.sublora.projectors import make_projector; \
P = make_projector('dense', 5000, 100, seed=1); print(P(torch.ones(100)).std())"

All three kinds have E[P^T P] = I_d:
- dense: i.i.d. N(0, 1/D) entries in row chunks, chunk c drawn on the CPU from
  derive_seed(seed, "chunk", c). Below `cache_mb` the matrix is kept in memory (never saved),
  above it every product (P w and P^T g) regenerates the chunks.
- sparse: density p = 1/sqrt(D) (Li et al.'s very sparse projection), each nonzero +-1/sqrt(p D)
  so E[P_ij^2] = 1/D; duplicate positions are dropped.
- kron: c (P1 kron P2)[:D, :d] with P1 (D1, d1), P2 (D2, d2) Gaussian, D1 D2 >= D, d1 d2 >= d,
  c = sqrt(D1 D2 / D): P w is the row-major flattening of P1 W P2^T, W = w padded to (d1, d2).
"""

import hashlib
import math

import numpy as np
import torch

CHUNK_ELEMS = 1 << 22  # entries per generated chunk of a dense projector (16 MiB of float32)


def derive_seed(seed: int, *names) -> int:
    """A 63-bit seed for the projector called `names` in the run with seed `seed`."""
    blob = ":".join(str(x) for x in (seed, *names)).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") >> 1


class Projector:
    def __init__(self, D: int, d: int, seed: int):
        self.D, self.d, self.seed = D, d, seed
        self._on: dict = {}  # str(device) -> the tensors `on` made there

    def on(self, device, make):
        """make(device), made once per device (the projector's tensors moved there)."""
        key = str(device)
        if key not in self._on:
            self._on[key] = make(device)
        return self._on[key]

    def __call__(self, w: torch.Tensor) -> torch.Tensor:  # (d,) -> (D,), differentiable
        raise NotImplementedError

    def dense(self) -> torch.Tensor:
        """The full (D, d) matrix (for tests and small sizes)."""
        cols = [self(e).detach() for e in torch.eye(self.d)]
        return torch.stack(cols, dim=1) if cols else torch.zeros(self.D, 0)


class DenseProjector(Projector):
    def __init__(self, D, d, seed, *, cache_mb: float = 256.0):
        super().__init__(D, d, seed)
        self.rows = max(1, CHUNK_ELEMS // max(d, 1))
        self.cached = D * d * 4 <= cache_mb * 2**20  # keep the whole (D, d) matrix per device

    def chunk(self, c: int) -> torch.Tensor:
        """Rows [c*rows, (c+1)*rows) of P, always drawn on the CPU (portable across devices)."""
        r0, r1 = c * self.rows, min(self.D, (c + 1) * self.rows)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "chunk", c))
        return torch.randn(r1 - r0, self.d, generator=gen) / math.sqrt(self.D)

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.D / self.rows)

    def __call__(self, w):
        if self.cached:
            full = self.on(w.device, lambda dev: torch.cat(
                [self.chunk(c) for c in range(self.n_chunks)]).to(dev))
            return full @ w
        return _LazyDense.apply(w, self)


class _LazyDense(torch.autograd.Function):
    """P w and P^T g with P regenerated chunk by chunk, never held whole."""

    @staticmethod
    def forward(ctx, w, proj):
        ctx.proj = proj
        return torch.cat([proj.chunk(c).to(w.device) @ w for c in range(proj.n_chunks)])

    @staticmethod
    def backward(ctx, g):
        proj = ctx.proj
        out = torch.zeros(proj.d, device=g.device, dtype=g.dtype)
        for c, gc in enumerate(g.split(proj.rows)):
            out += proj.chunk(c).to(g.device).t() @ gc
        return out, None


class SparseProjector(Projector):
    def __init__(self, D, d, seed):
        super().__init__(D, d, seed)
        rng = np.random.default_rng(derive_seed(seed, "sparse"))
        p = min(1.0, 1.0 / math.sqrt(D))
        nnz = rng.binomial(D * d, p)
        flat = np.unique(rng.integers(0, D * d, size=nnz))
        rows, cols = np.divmod(flat, d)
        vals = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=len(flat))
        vals /= math.sqrt(p * D)
        idx = torch.from_numpy(np.stack([rows, cols]))
        self.P = torch.sparse_coo_tensor(idx, torch.from_numpy(vals), (D, d),
                                         check_invariants=False).coalesce()
        self.PT = self.P.t().coalesce()

    def __call__(self, w):
        return _SparseMul.apply(w, *self.on(w.device, lambda dev: (self.P.to(dev),
                                                                   self.PT.to(dev))))


class _SparseMul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, P, PT):
        ctx.PT = PT
        return torch.sparse.mm(P, w[:, None])[:, 0]

    @staticmethod
    def backward(ctx, g):
        return torch.sparse.mm(ctx.PT, g[:, None])[:, 0], None, None


class KronProjector(Projector):
    def __init__(self, D, d, seed):
        super().__init__(D, d, seed)
        self.d1 = math.ceil(math.sqrt(d))
        self.d2 = math.ceil(d / self.d1)
        self.D1 = math.ceil(math.sqrt(D))
        self.D2 = math.ceil(D / self.D1)
        g1 = torch.Generator().manual_seed(derive_seed(seed, "kron", 1))
        g2 = torch.Generator().manual_seed(derive_seed(seed, "kron", 2))
        scale = math.sqrt(self.D1 * self.D2 / D)
        self.P1 = torch.randn(self.D1, self.d1, generator=g1) / math.sqrt(self.D1) * scale
        self.P2 = torch.randn(self.D2, self.d2, generator=g2) / math.sqrt(self.D2)

    def __call__(self, w):
        P1, P2 = self.on(w.device, lambda dev: (self.P1.to(dev), self.P2.to(dev)))
        W = torch.nn.functional.pad(w, (0, self.d1 * self.d2 - self.d)).view(self.d1, self.d2)
        return (P1 @ W @ P2.t()).reshape(-1)[: self.D]  # (D1, D2) row-major -> first D


KINDS = {"dense": DenseProjector, "sparse": SparseProjector, "kron": KronProjector}


def make_projector(kind: str, D: int, d: int, seed: int, *, cache_mb: float = 256.0) -> Projector:
    """A projector of `kind`; cache_mb: DenseProjector's (the others never cache a matrix)."""
    if kind not in KINDS:
        raise ValueError(f"unknown projector {kind!r}; choose one of {', '.join(KINDS)}")
    if kind == "dense":
        return DenseProjector(D, d, seed, cache_mb=cache_mb)
    return KINDS[kind](D, d, seed)
