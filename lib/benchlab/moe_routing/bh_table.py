"""Calibrated BH without an N-way search per logit: exact, via a per-(layer, alpha) table.

The calibrated p-value of logit x for expert j is p = fl32(m / (N + 1)) with the integer
m = 1 + N - #{z_j < x} (calibration.py). p is increasing in m, so every comparison BH makes
(p <= (k/E) alpha, and which p-values are smallest) is a comparison of m, and m only matters
exactly for small p. The table keeps, per expert, the Mt largest calibration logits (the "tail")
and counts r = #{tail values < x} with a uniform grid over the tail: cell(x) is built from
IEEE sub/mul/clamp, so it is monotone in x; values in lower cells are < x, values in higher cells
are > x, and only the few values sharing x's cell are compared (padded to S per cell). Then

    key = Mt + 1 - r   (= m when key <= Mt; key = Mt + 1 means m > Mt, order unknown)

k* comes from a histogram of BH levels of the keys. The mask is {key <= threshold}: the BH set
(threshold M_{k*}) when no cap applies, else the clip(k*, min_k, max_k) smallest keys when that
set is unique and exact. Rows where it is not (a tie in m at the cap boundary, or the min_k
fill-in reaching beyond the tail) use the exact p-values and torch.topk, like
routers.bh_select, so the mask equals bh_select(pvalues(logits), ...) on every input
(tests/moe_routing/test_moe_fastbh.py).

    python -c "import torch; from benchlab.moe_routing.calibration import EmpiricalNull; \
n = EmpiricalNull(torch.randn(1, 8192, 64)).layer(0); print(n.bh_select(torch.randn(3, 64), .05))"
"""

import math

import torch

MAX_CELL = 64  # more tail values in one grid cell (massive ties): use the exact path


class BHTable:
    def __init__(self, **kw):
        self.__dict__.update(kw)

    @classmethod
    def build(cls, sorted_logits: torch.Tensor, alpha: float, tail: float = 0.1,
              cells_per_value: int = 2) -> "BHTable | None":
        """Table for sorted calibration logits [E, N]; None when the fast path cannot be exact."""
        z = sorted_logits.float()
        E, N = z.shape
        dev = z.device
        m = torch.arange(1, N + 2, device=dev)
        pm = (m / (N + 1)).to(torch.float32)  # the p-value of each m, as NullLayer.pvalues
        if not bool((pm[1:] > pm[:-1]).all()) or not bool(torch.isfinite(z).all()):
            return None  # m -> p not injective, or non-finite calibration logits
        ks = torch.arange(1, E + 1, device=dev)
        thr = (ks.to(torch.float32) / E) * alpha  # as routers.bh_select
        mk = torch.searchsorted(pm, thr, right=True)  # M_k = #{m : p(m) <= thr_k}, [E]
        Mt = min(N, max(int(mk[-1]), math.ceil(tail * (N + 1)), 1))  # tail: m <= Mt
        w = z[:, N - Mt:]  # [E, Mt] tail, ascending
        G = max(1, cells_per_value * Mt)
        lo = w[:, 0].contiguous()
        span = w[:, -1] - lo
        s = torch.where(span > 0, G / span, torch.ones_like(span))
        s = torch.where(torch.isfinite(s), s, torch.ones_like(s)).contiguous()
        cw = cls._cell(w, lo[:, None], s[:, None], G)  # [E, Mt], nondecreasing per row
        counts = torch.zeros(E, G, dtype=torch.int64, device=dev)
        counts.scatter_add_(1, cw, torch.ones_like(cw))
        S = int(counts.max())
        if S > MAX_CELL:
            return None
        r0 = counts.cumsum(1) - counts  # [E, G]: #{tail values in lower cells}
        pos = torch.arange(Mt, device=dev) - r0.gather(1, cw)  # slot within its cell
        win = torch.full((E, G, S), math.inf, device=dev)
        win[torch.arange(E, device=dev)[:, None], cw, pos] = w
        mk0 = torch.cat([mk.new_zeros(1), mk])  # [E + 1]: M_0 = 0
        # BH level of a key: min{k : key <= M_k} (E + 1: none), for keys 0..Mt+1
        level = torch.searchsorted(mk, torch.arange(Mt + 2, device=dev), right=False) + 1
        return cls(E=E, N=N, Mt=Mt, G=G, S=S, lo=lo, s=s, r0=r0.reshape(-1),
                   win=win.reshape(E * G, S), mk0=mk0, level=level,
                   level_rest=int(level[Mt + 1]), ks=ks, alpha=alpha)

    @staticmethod
    def _cell(v, lo, s, G):
        # separate IEEE ops (no fused multiply-add): a monotone map of v, same in build and use
        return ((v - lo) * s).clamp_(0, G - 1).long()

    def lookup(self, logits: torch.Tensor):
        """Keys of the logits above their expert's tail start (about `tail` of them; the rest
        have r = 0, key Mt + 1): (tail mask [T, E], flat index [n], row [n], key [n]) and the
        histogram [T, E + 2] of BH levels over all entries."""
        x = logits.to(self.lo.device, torch.float32)
        x = torch.nan_to_num(x, nan=math.inf, posinf=math.inf, neginf=-math.inf)  # as searchsorted
        T, E = x.shape
        tail = x > self.lo  # [T, E]
        flat = tail.view(-1).nonzero().squeeze(1)  # [n]
        xt = x.view(-1).index_select(0, flat)
        col = flat % E
        lo, s = self.lo.index_select(0, col), self.s.index_select(0, col)
        idx = self._cell(xt, lo, s, self.G) + col * self.G  # [n] cell of each entry
        below = (self.win.index_select(0, idx) < xt[:, None]).sum(-1)
        kt = (self.Mt + 1) - (self.r0.index_select(0, idx) + below)  # m
        row = flat // E
        hist = torch.bincount(row * (E + 2) + self.level.index_select(0, kt),
                              minlength=T * (E + 2))
        hist = hist.view(T, E + 2)
        hist[:, self.level_rest] += E - torch.bincount(row, minlength=T)  # keys Mt + 1
        return tail, flat, row, kt, hist

    def keys(self, logits: torch.Tensor) -> torch.Tensor:
        """Dense key [T, E] (int64): m where m <= Mt, else Mt + 1."""
        tail, flat, _, kt, _ = self.lookup(logits)
        key = torch.full((tail.numel(),), self.Mt + 1, dtype=torch.int64, device=kt.device)
        return key.index_put_((flat,), kt).view(tail.shape)

    def select(self, logits: torch.Tensor, min_k: int, max_k: int | None, exact_pvalues):
        from .routers import check_bh_args

        E, Mt = self.E, self.Mt
        max_k = check_bh_args(self.alpha, E, min_k, max_k)
        tail, flat, row, kt, hist = self.lookup(logits)
        T = tail.shape[0]
        count = hist[:, 1:E + 1].cumsum(1)  # [T, E]: #{p <= thr_k}
        kstar = torch.where(count >= self.ks, self.ks, 0).amax(1)  # [T]
        k = kstar.clamp(min_k, max_k)
        thresh = self.mk0.index_select(0, kstar)  # BH set: exactly k* keys <= M_{k*}
        ok = torch.ones(T, dtype=torch.bool, device=k.device)
        fill = k > kstar  # k = min_k: the smallest keys
        if min_k == 1 and bool(fill.any()):  # the usual fill-in: the unique smallest key
            kmin = torch.full((T,), Mt + 1, dtype=kt.dtype, device=kt.device)
            kmin.scatter_reduce_(0, row, kt, "amin")
            ties = torch.bincount(row[kt == kmin.index_select(0, row)], minlength=T)
            thresh = torch.where(fill, kmin, thresh)
            ok &= ~fill | ((ties == 1) & (kmin <= Mt))
            fill = fill & False
        rest = (fill | (k < kstar)).nonzero().squeeze(1)  # caps: the k smallest keys
        if rest.numel():
            kr = self.keys(logits)[rest]
            kk = k[rest]
            kth = kr.topk(int(kk.max()), 1, largest=False).values.gather(1, (kk - 1)[:, None])
            kth = kth[:, 0]
            thresh[rest] = kth
            ok[rest] = ((kr <= kth[:, None]).sum(1) == kk) & (kth <= Mt)
        mask = torch.zeros(T * E, dtype=torch.bool, device=kt.device)
        mask[flat] = kt <= thresh.index_select(0, row)
        mask = mask.view(T, E)
        big = ok & (thresh > Mt)  # only when Mt = N: keys Mt + 1 are exact m = N + 1
        if bool(big.any()):
            mask[big] |= ~tail[big]
        bad = (~ok).nonzero().squeeze(1)
        if bad.numel():  # exact p-values and torch.topk on these rows, as routers.bh_select
            p = exact_pvalues(logits[bad])
            order = torch.topk(p, max_k, dim=-1, largest=False, sorted=True).indices
            keep = torch.arange(max_k, device=p.device) < k[bad].unsqueeze(-1)
            mask[bad] = torch.zeros_like(p, dtype=torch.bool).scatter_(-1, order, keep)
        return mask
