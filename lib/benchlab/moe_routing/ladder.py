"""Calibrated BH without an N-way search per logit, exactly: a ladder of rank cuts per alpha,
walked row by row by a compiled kernel (numba).

The calibrated p-value of logit x for expert e is p = fl32(m / (N + 1)) with the integer rank
m = 1 + N - #{z_e < x} (calibration.py). p is increasing in m, so every comparison BH makes is
a comparison of ranks. A ladder is an increasing list of ranks R_1 < ... < R_J = N + 1, the same
for every expert: BH's cuts M_k = #{m : p(m) <= (k / E) alpha} (k = 1..E) and `extra` more,
geometric from M_E to N + 1. A logit's level, min{j : m <= R_j}, is its coarsened rank, and

    m <= R_j  <=>  x > cut[j, e] = z_e[N - R_j]   (0-based, ascending calibration logits)

so the count of a row's ranks within R_j is E compares with one row of cuts: a vector loop, no
search. Per row, the kernel (_select):
- k* = max{k : #{m <= M_k} >= k} is at most n = #{m <= M_E}. A chain of counts 1 -> 2 -> 4 ->
  ... -> E clears most rows: with at most c ranks within M_c' at each step c -> c', every k in
  (c, c'] counts at most c < k, so k* <= 1 (1 when a rank is within M_1). A row that fails a
  step counts k = n, n - 1, ... down to the first that qualifies.
- k = clip(k*, min_k, max_k), and the mask is the k smallest ranks: a bisection over levels
  finds the first level b whose count reaches k (among levels 1..P of M_E when k <= n, above
  them when the min_k fill-in needs more), and every entry below b is taken. When level b holds
  more entries than are needed (the caps or the fill-in cut through it; never when k = k*, as
  BH's set has exactly k* members), those entries get exact ranks, by binary search in their
  expert's calibration logits, and the smallest (rank, expert) are kept: ties go to the lower
  expert, as in routers.bh_select.
The mask equals bh_select(pvalues(logits), alpha, min_k, max_k) on every input
(tests/moe_routing/test_moe_fastbh.py). On the tiny model's router logits (4096 x 64 per layer)
it takes about half the time of the softmax + top-8 router; the torch glue it replaced (level
tables gathered in dense passes, numpy compares) took about as long as top-8. Tensors off the
CPU take the exact path (NullLayer.bh_select).

    python -c "import torch; from benchlab.moe_routing.calibration import EmpiricalNull; \
n = EmpiricalNull(torch.randn(1, 8192, 64)).layer(0); print(n.bh_select(torch.randn(3, 64), .05))"
"""

import math

import numpy as np
import torch
from numba import njit

from .routers import check_bh_args

FMAX = torch.finfo(torch.float32).max


def canonical(x: torch.Tensor) -> torch.Tensor:
    """float32 logits ranked as the binary search ranks them: NaN as +inf, -inf as the lowest
    finite value (both keep their rank: every calibration logit is finite), -0.0 as +0.0."""
    return torch.nan_to_num(x.float(), nan=math.inf, posinf=math.inf, neginf=-FMAX) + 0.0


class Ladder:
    def __init__(self, **kw):
        self.__dict__.update(kw)

    @classmethod
    def build(cls, sorted_logits: torch.Tensor, alpha: float, extra: int = 48) -> "Ladder | None":
        """The ladder of sorted calibration logits [E, N] at `alpha`; None when the ranks cannot
        stand for the p-values (m -> p not injective in float32) or a logit is not finite."""
        z = sorted_logits.detach().float().cpu()
        E, N = z.shape
        pm = (torch.arange(1, N + 2) / (N + 1)).to(torch.float32)
        if not bool((pm[1:] > pm[:-1]).all()) or not bool(torch.isfinite(z).all()):
            return None
        z = canonical(z)  # finite, so only -0.0 -> +0.0
        thr = (torch.arange(1, E + 1).to(torch.float32) / E) * alpha  # as bh_select
        mk = torch.searchsorted(pm, thr, right=True)  # M_k, nondecreasing in 0..N+1
        lo = max(int(mk[-1]), 1)
        more = torch.logspace(math.log10(lo), math.log10(N + 1), extra).round().long()
        R = torch.cat([mk, more.clamp(1, N + 1), mk.new_tensor([N + 1])]).unique()
        R = R[R > 0]  # m <= 0 admits nothing: not a level
        pos = torch.where(mk > 0, torch.searchsorted(R, mk) + 1, 0)  # level <= pos: m <= M_k
        # cuts[j - 1, e]: x > cut <=> level <= j; the last row (R_J = N + 1) admits every logit
        cuts = torch.cat([z[:, N - R[:-1]].T, torch.full((1, E), -math.inf)])
        return cls(E=E, R=R, J=len(R), alpha=alpha, pos=pos.numpy(),
                   cuts=cuts.contiguous().numpy(), chain=np.array(doubling(E), np.int64),
                   z=z.contiguous().numpy())

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        """Levels [T, E] (int64, 1..J) of canonical logits [T, E]: 1 + #{j < J : cut[j] >= x}."""
        cuts = torch.from_numpy(self.cuts[:-1])
        return 1 + (cuts[:, None, :] >= x[None]).sum(0)

    def select(self, logits: torch.Tensor, min_k: int, max_k: int | None) -> torch.Tensor:
        """The mask of routers.bh_select(exact p-values, alpha, min_k, max_k) for CPU logits
        [..., E]."""
        max_k = check_bh_args(self.alpha, self.E, min_k, max_k)
        x = canonical(logits.detach()).reshape(-1, self.E).contiguous().numpy()
        mask = np.zeros(x.shape, dtype=np.bool_)
        _select(x, self.cuts, self.pos, self.chain, self.z, min_k, max_k, mask)
        return torch.from_numpy(mask).view(logits.shape)


def doubling(E: int) -> tuple:
    """The chain's checkpoints 1, 2, 4, ..., E. On the tiny model's logits (E = 64) 8% of
    bh_loose's rows fail a step, where the steps 1 -> max_k -> E (8) failed 35%: 80% of those
    had k* = 0."""
    return tuple(sorted({1 << i for i in range(E.bit_length()) if 1 << i < E} | {E}))


@njit(cache=True, nogil=True, inline="always")
def _count(x, cuts, j):
    """#{e : level_e <= j} of a row x [E]: x_e > cuts[j - 1, e] (0 at j = 0)."""
    if j == 0:
        return 0
    c = cuts[j - 1]
    n = 0
    for e in range(x.shape[0]):
        n += x[e] > c[e]
    return n


@njit(cache=True, nogil=True)
def _rank(z, v):
    """The exact rank m = 1 + N - #{z < v} of v in ascending calibration logits z [N]."""
    lo, hi = 0, z.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if z[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return 1 + z.shape[0] - lo


@njit(cache=True, nogil=True)
def _smallest(out, x, cuts, z, lo, hi, k, cand, key):
    """Set out [E] at the k smallest (rank, expert) of row x, given
    #{level <= lo} < k <= #{level <= hi}."""
    E = x.shape[0]
    while hi - lo > 1:  # b = hi: the first level whose count reaches k
        mid = (lo + hi) >> 1
        if _count(x, cuts, mid) >= k:
            hi = mid
        else:
            lo = mid
    need = k - _count(x, cuts, hi - 1)  # taken from level b, >= 1
    m = 0
    for e in range(E):
        if hi >= 2 and x[e] > cuts[hi - 2, e]:  # below level b: taken
            out[e] = True
        elif x[e] > cuts[hi - 1, e]:  # at level b: a candidate
            cand[m] = e
            m += 1
    if m == need:
        for q in range(m):
            out[cand[q]] = True
        return
    for q in range(m):  # level b holds more than are needed: exact ranks decide
        key[q] = _rank(z[cand[q]], x[cand[q]]) * E + cand[q]
    for q in range(m):
        smaller = 0
        for r in range(m):
            smaller += key[r] < key[q]
        if smaller < need:
            out[cand[q]] = True


@njit(cache=True, nogil=True)
def _select(x, cuts, pos, chain, z, min_k, max_k, mask):
    """The kernel: mask [T, E] of BH with caps on canonical logits x [T, E] (module docstring);
    cuts [J, E], pos [E] (the level of M_k, 0 when no rank qualifies), chain, z [E, N]."""
    T, E = x.shape
    P = pos[E - 1]
    cand = np.empty(E, np.int64)
    key = np.empty(E, np.int64)
    for t in range(T):
        row = x[t]
        n = _count(row, cuts, P)
        kstar = 0
        if n >= 1:
            for q in range(chain.shape[0] - 1):  # a step c -> c' with more than c: k* may be >= 2
                if _count(row, cuts, pos[chain[q + 1] - 1]) > chain[q]:
                    for k in range(n, 1, -1):
                        if _count(row, cuts, pos[k - 1]) >= k:
                            kstar = k
                            break
                    break
            if kstar == 0 and _count(row, cuts, pos[0]) >= 1:
                kstar = 1
        k = min(max(kstar, min_k), max_k)
        if k > 0:
            lo, hi = (0, P) if k <= n else (P, cuts.shape[0])
            _smallest(mask[t], row, cuts, z, lo, hi, k, cand, key)
