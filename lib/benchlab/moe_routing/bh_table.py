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
(threshold M_{k*}) when no cap applies, else the clip(k*, min_k, max_k) smallest keys, ties in m
going to the lower expert index as in routers.bh_select. Rows whose k-th smallest key lies
beyond the tail (the min_k fill-in when no logit of the row reaches its tail) take exact ranks
from a second table over the whole null (NullLayer.smallest, built on first need), so the mask
equals bh_select(pvalues(logits), ...) on every input
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
              cells_per_value: int = 8, cells: int | None = None,
              max_cell: int = MAX_CELL) -> "BHTable | None":
        """Table for sorted calibration logits [E, N] (grid: `cells` per expert, else
        `cells_per_value` per tail value); None when the fast path cannot be exact."""
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
        G = cells or max(1, cells_per_value * Mt)
        lo = w[:, 0].contiguous()
        span = w[:, -1] - lo
        s = torch.where(span > 0, G / span, torch.ones_like(span))
        s = torch.where(torch.isfinite(s), s, torch.ones_like(s)).contiguous()
        cw = cls._cell(w, lo[:, None], s[:, None], G)  # [E, Mt], nondecreasing per row
        counts = torch.zeros(E, G, dtype=torch.int64, device=dev)
        counts.scatter_add_(1, cw, torch.ones_like(cw))
        S = int(counts.max())
        if S > max_cell:
            return None
        r1 = counts.cumsum(1)  # [E, G]: #{tail values in this cell or lower}
        r0 = r1 - counts  # [E, G]: #{tail values in lower cells}
        pos = torch.arange(Mt, device=dev) - r0.gather(1, cw)  # slot within its cell
        win = torch.full((E, G, S), math.inf, device=dev)
        win[torch.arange(E, device=dev)[:, None], cw, pos] = w
        mk0 = torch.cat([mk.new_zeros(1), mk])  # [E + 1]: M_0 = 0
        # BH level of a key: min{k : key <= M_k} (E + 1: none), for keys 0..Mt+1
        level = torch.searchsorted(mk, torch.arange(Mt + 2, device=dev), right=False) + 1
        return cls(E=E, N=N, Mt=Mt, G=G, S=S, lo=lo, s=s, r0=r0.reshape(-1).int(),
                   r1=r1.reshape(-1).int(),
                   win=win.reshape(E * G, S), mk0=mk0, level=level,
                   level_rest=int(level[Mt + 1]), ks=ks, alpha=alpha)

    @staticmethod
    def _cell(v, lo, s, G):
        # separate IEEE ops (no fused multiply-add): a monotone map of v, same in build and use
        return ((v - lo) * s).clamp_(0, G - 1).long()

    def lookup(self, logits: torch.Tensor):
        """Keys of the logits above their expert's tail start (about `tail` of them; the rest
        have r = 0, key Mt + 1): (tail mask [T, E], flat index [n], key [n])."""
        x = logits.to(self.lo.device, torch.float32)
        x = torch.nan_to_num(x, nan=math.inf, posinf=math.inf, neginf=-math.inf)  # as searchsorted
        E = x.shape[1]
        tail = x > self.lo  # [T, E]
        flat = tail.view(-1).nonzero().squeeze(1)  # [n]
        xt = x.view(-1).index_select(0, flat)
        col = flat % E
        lo, s = self.lo.index_select(0, col), self.s.index_select(0, col)
        idx = self._cell(xt, lo, s, self.G) + col * self.G  # [n] cell of each entry
        below = (self.win.index_select(0, idx) < xt[:, None]).sum(-1)
        return tail, flat, (self.Mt + 1) - (self.r0.index_select(0, idx) + below)  # key = m

    def keys(self, logits: torch.Tensor) -> torch.Tensor:
        """Dense key [T, E] (int64): m where m <= Mt, else Mt + 1."""
        tail, flat, kt = self.lookup(logits)
        key = torch.full((tail.numel(),), self.Mt + 1, dtype=torch.int64, device=kt.device)
        return key.index_put_((flat,), kt).view(tail.shape)

    def smallest(self, logits: torch.Tensor, k: int) -> torch.Tensor:
        """routers.smallest(m, k) for the exact ranks m of logits [b, E] on a table over the
        whole null (Mt = N), without the exact m of every logit: a logit's cell bounds its m to
        [1 + N - r1, 1 + N - r0]; only logits whose lower bound is at most the row's k-th
        smallest upper bound can be among the k smallest (ties included), and only those are
        counted exactly. The rest get m = N + 2, above every real rank."""
        from .routers import smallest

        x = logits.to(self.lo.device, torch.float32)
        x = torch.nan_to_num(x, nan=math.inf, posinf=math.inf, neginf=-math.inf)
        E, N = self.E, self.N
        cell = self._cell(x, self.lo, self.s, self.G) + torch.arange(E, device=x.device) * self.G
        cell = cell.view(-1)
        r0, r1 = self.r0.index_select(0, cell), self.r1.index_select(0, cell)
        r0b = r0.view(x.shape)  # the k-th largest r0 is the k-th smallest upper bound
        kth = r0b.amax(1, keepdim=True) if k == 1 else r0b.topk(k, 1).values[:, -1:]
        cand = (r1.view(x.shape) >= kth).view(-1).nonzero().squeeze(1)
        idx, xc = cell[cand], x.view(-1)[cand]
        below = (self.win.index_select(0, idx) < xc[:, None]).sum(-1)
        m = torch.full((x.numel(),), N + 2, dtype=torch.int64, device=x.device)
        m[cand] = (1 + N) - (r0[cand] + below)
        return smallest(m.view(x.shape), k)

    def kstar(self, row, level, outside, T: int) -> torch.Tensor:
        """k* per row [T] from the BH levels of the tail entries (row [n], level [n]) and the
        count of entries outside the tail per row (level `level_rest`). k* is at most the
        number of admitted entries of its row, so levels above the busiest row's count are
        pooled: the histogram is [T, A + 1], not [T, E + 2]."""
        E, rest = self.E, self.level_rest
        n_adm = torch.zeros(T, dtype=torch.int64, device=row.device)
        n_adm.index_add_(0, row, (level <= E).long())
        if rest <= E:  # only when the tail is everything (Mt = N) and alpha admits m = N + 1
            n_adm += outside
        A = int(n_adm.max()) if T else 0
        if A == 0:
            return n_adm.new_zeros(T)
        hist = torch.bincount(row * (A + 1) + level.clamp(max=A + 1) - 1, minlength=T * (A + 1))
        hist = hist.view(T, A + 1)
        if rest <= E:
            hist[:, min(rest, A + 1) - 1] += outside
        ks = self.ks[:A]
        return ((hist[:, :A].cumsum(1) >= ks) * ks).amax(1)

    def select(self, logits: torch.Tensor, min_k: int, max_k: int | None, exact_smallest):
        """The mask of routers.bh_select(exact p-values, alpha, min_k, max_k). Ties in p are
        ties in m, and both paths give them to the lower expert index: keys are packed as
        m * E + expert, which makes every row's order strict."""
        from .routers import check_bh_args

        E, Mt = self.E, self.Mt
        max_k = check_bh_args(self.alpha, E, min_k, max_k)
        tail, flat, kt = self.lookup(logits)
        T = tail.shape[0]
        row = flat // E
        col = flat - row * E
        packed = kt * E + col  # [n], unique within a row
        outside = E - torch.bincount(row, minlength=T)  # entries with key Mt + 1, per row
        kstar = self.kstar(row, self.level.index_select(0, kt), outside, T)
        k = kstar.clamp(min_k, max_k)
        thresh = self.mk0.index_select(0, kstar) * E + (E - 1)  # BH set: keys <= M_{k*}
        ok = torch.ones(T, dtype=torch.bool, device=kt.device)
        one = (k == 1) & (kstar == 0)  # the usual fill-in: the row's smallest key
        if bool(one.any()):
            kmin = torch.full((T,), (Mt + 1) * E, dtype=kt.dtype, device=kt.device)
            kmin.scatter_reduce_(0, row, packed, "amin")
            thresh = torch.where(one, kmin, thresh)
            ok &= ~one | (kmin < (Mt + 1) * E)
        other = ((k != kstar) & ~one).nonzero().squeeze(1)  # caps, larger fill-in: k smallest
        if other.numel():
            o = other.numel()
            pos = torch.full((T,), -1, dtype=torch.int64, device=kt.device)
            pos[other] = torch.arange(o, device=kt.device)
            pr = pos.index_select(0, row)
            mine = pr >= 0
            dense = ((Mt + 1) * E + torch.arange(E, device=kt.device)).repeat(o, 1)  # [o, E]
            dense[pr[mine], col[mine]] = packed[mine]
            kk = k[other]
            top = dense.topk(max(1, int(kk.max())), 1, largest=False).values
            kth = top.gather(1, (kk - 1).clamp(min=0)[:, None])[:, 0]
            thresh[other] = torch.where(kk > 0, kth, -1)
            ok[other] = (kk == 0) | (kth < (Mt + 1) * E)  # the k-th smallest is an exact m
        mask = torch.zeros(T * E, dtype=torch.bool, device=kt.device)
        mask[flat] = packed <= thresh.index_select(0, row)
        mask = mask.view(T, E)
        big = ok & (k == kstar) & (self.mk0.index_select(0, kstar) > Mt)  # only when Mt = N:
        if bool(big.any()):  # keys Mt + 1 are exact m = N + 1
            mask[big] |= ~tail[big]
        bad = (~ok).nonzero().squeeze(1)
        if bad.numel():  # exact ranks m (ordered as the p-values) on these rows
            kb = k[bad]
            kmax = int(kb.max())  # usually 1: the fill-in of rows that no tail reaches
            order = exact_smallest(logits[bad], kmax)
            keep = torch.arange(kmax, device=order.device) < kb.unsqueeze(-1)
            mask[bad] = torch.zeros_like(mask[bad]).scatter_(-1, order, keep)
        return mask
