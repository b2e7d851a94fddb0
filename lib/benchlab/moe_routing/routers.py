"""Routers as pure tensor functions on router logits [T, E] (T tokens, E experts).

Every router returns `(mask, weights)`: a boolean [T, E] selection and the [T, E] combination
weights (zero off the selection). Run the routers on random logits:

    python -c "import torch; from benchlab.moe_routing.routers import *; \
print(route(torch.randn(4, 64), ROUTINGS.get('bh_naive'))[0].sum(-1))"

BH step-up (Benjamini-Hochberg 1995) for one token with E p-values:
    k* = max{k : p_(k) <= (k / E) alpha}      (0 when no k qualifies)
    selected = {e : p_e <= (k* / E) alpha}    (= the k* smallest p-values)
then the caps: k = clip(k*, min_k, max_k) smallest p-values are kept. No sort is needed for k*:
with b_e = the smallest k whose threshold admits p_e, #{e : b_e <= k} counts the p-values under
threshold k, and k* is the largest k with that count >= k.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..core.errors import BenchlabError
from ..core.registry import Registry
from .nulls import NULLS, as_numpy

METHODS = ("topk", "topp", "bh", "threshold")


@dataclass(frozen=True)
class Routing:
    """One routing configuration (a row of the seed's config table)."""

    name: str
    method: str  # "topk" | "topp" | "bh" | "threshold"
    k: int = 8  # top-k
    p: float = 0.4  # top-p mass
    alpha: float = 0.05  # BH false-discovery rate; "threshold": the fixed cutoff p <= alpha
    temperature: float = 1.0  # softmax temperature of the weights (and of the prob / naive p)
    min_k: int = 1
    max_k: int = 8
    null: str = "per_expert"  # a definition in nulls.NULLS, or "naive" (1 - softmax prob)
    renorm: bool = False  # mixing weights renormalized over the selection (norm_topk_prob)

    def __post_init__(self):
        where = f"routing {self.name}"
        if self.method not in METHODS:
            raise BenchlabError(f"{where}: method: unknown {self.method!r} "
                                f"({', '.join(METHODS)})")
        if self.method == "threshold" and self.null not in NULLS:
            raise BenchlabError(f"{where}: null: a threshold needs a calibrated null "
                                f"({', '.join(NULLS)}), got {self.null!r}")
        if self.method in ("bh", "threshold"):
            if not 0 < self.alpha <= 1:
                raise BenchlabError(f"{where}: alpha: must be in (0, 1], got {self.alpha}")
            if not 0 <= self.min_k <= self.max_k:
                raise BenchlabError(f"{where}: max_k: need 0 <= min_k <= max_k, got "
                                    f"{self.min_k}, {self.max_k}")
            if self.null != "naive" and self.null not in NULLS:
                raise BenchlabError(f"{where}: null: unknown {self.null!r} "
                                    f"(known: naive, {', '.join(NULLS)})")
        if not self.temperature > 0:
            raise BenchlabError(f"{where}: temperature: must be > 0, got {self.temperature}")

    @property
    def calibrated(self) -> bool:
        """Whether this routing needs a calibrated null (one calibrated under itself)."""
        return self.method in ("bh", "threshold") and self.null != "naive"


ROUTINGS = Registry("routing configuration")
for _r in (
    Routing("topk_8", "topk", k=8),
    Routing("bh_strict", "bh", alpha=0.01),
    Routing("bh_moderate", "bh", alpha=0.05),
    Routing("bh_loose", "bh", alpha=0.10),
    # temperature 2 in the null itself (scores softmax(x / 2)): the temperature changes the
    # selection; with rank-based per-expert p-values it changed only the weights (issue 17)
    Routing("bh_adaptive", "bh", alpha=0.05, temperature=2.0, null="prob"),
    Routing("topp_0.4", "topp", p=0.4),
    Routing("bh_naive", "bh", alpha=0.05, null="naive"),
    Routing("bh_pooled", "bh", alpha=0.05, null="pooled"),
    Routing("bh_within", "bh", alpha=0.05, null="within_token"),
    Routing("bh_pooled_renorm", "bh", alpha=0.05, null="pooled", renorm=True),
    Routing("topk_2_renorm", "topk", k=2, renorm=True),
):
    ROUTINGS.add(_r.name, _r)


def bh_threshold_index(pvalues: torch.Tensor, alpha: float) -> torch.Tensor:
    """k* of the BH step-up for each row of `pvalues` [..., E] -> int64 [...] (0 = none)."""
    E = pvalues.shape[-1]
    p = pvalues
    # b = smallest k in 1..E with p <= (k/E) alpha, using the same float expression as the
    # comparison (statsmodels: ecdf * alpha); E + 1 means "never".
    b = torch.ceil(p * (E / alpha)).clamp_(1, E + 1)
    thr = lambda k: (k / E) * alpha  # noqa: E731
    b = torch.where((b > 1) & (p <= thr(b - 1)), b - 1, b)
    b = torch.where((b <= E) & (p > thr(b)), b + 1, b).clamp_(1, E + 1).long()
    counts = torch.zeros(*p.shape[:-1], E + 2, dtype=torch.int64, device=p.device)
    counts.scatter_add_(-1, b, torch.ones_like(b))
    below = counts[..., 1:E + 1].cumsum(-1)  # [..., E]: #{p <= thr(k)} for k = 1..E
    ks = torch.arange(1, E + 1, device=p.device)
    return torch.where(below >= ks, ks, 0).amax(-1)


def check_bh_args(alpha: float, E: int, min_k: int, max_k: int | None) -> int:
    """Validate BH arguments; returns max_k (E when None)."""
    if not 0 < alpha <= 1:
        raise BenchlabError(f"bh_select: alpha: must be in (0, 1], got {alpha}")
    max_k = E if max_k is None else max_k
    if not 0 <= min_k <= max_k <= E:
        raise BenchlabError(f"bh_select: min_k/max_k: need 0 <= {min_k} <= {max_k} <= {E}")
    return max_k


def bh_select(pvalues: torch.Tensor, alpha: float, min_k: int = 1,
              max_k: int | None = None) -> torch.Tensor:
    """Boolean mask over the last dim: the BH step-up at level `alpha`, then the caps.

    Exactly `clip(k*, min_k, max_k)` hypotheses are selected per row (the smallest p-values;
    ties go to the lower expert index). Without caps (min_k=0, max_k=None) this equals
    statsmodels.stats.multitest.multipletests(p, alpha, method="fdr_bh")[0] row by row.
    """
    E = pvalues.shape[-1]
    max_k = check_bh_args(alpha, E, min_k, max_k)
    if min_k == 0 and max_k == E:  # no caps: the threshold set itself
        kstar = bh_threshold_index(pvalues, alpha)
        return pvalues <= (kstar.unsqueeze(-1).to(pvalues.dtype) / E) * alpha
    thr = (torch.arange(1, E + 1, device=pvalues.device).to(pvalues.dtype) / E) * alpha
    shape, pvalues = pvalues.shape, pvalues.reshape(-1, E)  # rows of E hypotheses

    def order(v, k):  # the k smallest, ascending, ties to the lower index (min: the first)
        if k == 1:
            neg, i = row_max(-v.nan_to_num(nan=math.inf))
            return -neg, i
        o = smallest(v, k)
        return v.gather(-1, o), o

    return select_prefix(pvalues, order, lambda v: v <= thr[:v.shape[-1]],
                         lambda k: count_where(pvalues, thr[k - 1], above=False), min_k,
                         max_k).view(shape)


def select_prefix(key, order, passes, under, min_k: int, max_k: int):
    """The mask of BH with caps when the hypotheses of a row of key [T, E] can be ranked, most
    significant first, by `order(key, k) -> (values, indices)` [T, k]: the first
    clip(k*, min_k, max_k).

    `passes(values)` says whether the j-th ranked passes its threshold (p_(j) <= (j / E) alpha),
    and `under(k)` [T] how many hypotheses pass threshold k. k* = max{j : passes}; the max_k
    first decide it unless a k > max_k passes too, which needs #under(E) > max_k: when a row has
    that, the rows ranked are ranked in full. A row with fewer than 2 under threshold max_k and
    at most max_k under E has k* <= 1 (count_j < j for every j >= 2), so it keeps its first
    hypothesis (or none) and needs only order(key, 1), far cheaper than ranking max_k; at small
    alpha that is almost every row. The other rows are ranked on their own."""
    mask = torch.zeros_like(key, dtype=torch.bool)
    if max_k == 0:
        return mask
    n_alpha = under(key.shape[-1])
    wide = n_alpha > max_k
    full = bool(wide.any())
    if min_k <= 1:
        v1, i1 = order(key, 1)
        k1 = passes(v1)[..., 0].long().clamp(min_k, max_k)
        mask.scatter_(-1, i1, (k1 >= 1).unsqueeze(-1))
        wide |= under(max_k) >= 2
    else:
        wide[...] = True
    rows = wide.nonzero().squeeze(1)  # one index for every gather below
    if not rows.numel():
        return mask
    v, idx = order(key.index_select(0, rows), key.shape[-1] if full else max_k)
    ks = torch.arange(1, v.shape[-1] + 1, device=key.device)
    kstar = torch.where(passes(v), ks, 0).amax(-1)
    keep = torch.arange(v.shape[-1], device=key.device) < kstar.clamp(min_k, max_k)[:, None]
    sub = torch.zeros(len(rows), key.shape[-1], dtype=torch.bool, device=key.device)
    return mask.index_copy_(0, rows, sub.scatter_(-1, idx, keep))


def select_over_cuts(s: np.ndarray, c: np.ndarray, min_k: int, max_k: int) -> np.ndarray:
    """select_prefix in numpy, for keys s [T, E] (float, no NaN; higher = more significant, ties
    to the lower index) whose j-th largest passes when s_(j) > c[j - 1] (c [E] non-increasing:
    a pooled null's cuts) -> the bool mask [T, E]. Most rows keep only their largest (numpy's
    argmax, ties to the first); the wide rows of select_prefix are sorted, k = clip(k*, min_k,
    max_k) read off their sorted scores, and those keeping k >= 2 take every score >= their
    k-th largest, exact unless that value is tied across the cut (those few rows are ranked by
    `largest`). On the router's 4096 x 64 rows this is about 0.4x select_prefix's torch glue."""
    T, E = s.shape
    mask = np.zeros((T, E), bool)
    if max_k == 0:
        return mask
    if min_k <= 1:
        r, top = np.arange(T), s.argmax(-1)
        mask[r, top] = True if min_k == 1 else s[r, top] > c[0]
        rows = np.flatnonzero((count_rows(s > c[max_k - 1]) >= 2)
                              | (count_rows(s > c[E - 1]) > max_k))
    else:
        rows = np.arange(T)
    sub = s[rows]
    srt = np.sort(sub, axis=-1)[:, ::-1]  # descending
    kk = sorted_kstar(srt, c).clip(min_k, max_k)
    more = kk >= 2  # rows keeping at most one are already right (min_k <= 1)
    rows, sub, srt, kk = rows[more], sub[more], srt[more], kk[more]
    if rows.size:
        m = sub >= np.take_along_axis(srt, kk[:, None] - 1, -1)
        tie = count_rows(m) != kk
        if tie.any():
            _, idx = largest(torch.from_numpy(sub[tie]), max_k)
            exact = np.zeros((int(tie.sum()), E), bool)
            np.put_along_axis(exact, idx.numpy(), np.arange(max_k) < kk[tie, None], -1)
            m[tie] = exact
        mask[rows] = m
    return mask


def sorted_kstar(srt: np.ndarray, c: np.ndarray) -> np.ndarray:
    """int64 [...]: k* = max{j : srt[..., j - 1] > c[j - 1]} (0 when none) for scores sorted
    descending along the last dim, c [E] a pooled null's cuts: BH's step-up, as the j-th
    largest score passes threshold j exactly when it exceeds c_j."""
    passed = srt > c
    return np.where(passed.any(-1), srt.shape[-1] - passed[..., ::-1].argmax(-1), 0)


def row_max(v: torch.Tensor):
    """(values, indices) [..., 1] of each row's largest, as torch.max(-1, keepdim=True) gives
    them (the first index on ties; NaN wins); numpy's argmax where nulls.as_numpy allows. This
    single reduction decides most tokens' routing."""
    vn = as_numpy(v)
    if vn is None:
        return v.max(-1, keepdim=True)
    i = torch.from_numpy(vn.argmax(-1)[..., None])
    return v.gather(-1, i), i


def count_where(v: torch.Tensor, cut, above: bool = True) -> torch.Tensor:
    """[...] int64: per row, how many of v are > cut (above) or <= cut (numpy's count where
    nulls.as_numpy allows); cut a 0-d tensor or a number of v's kind."""
    x = as_numpy(v)
    if x is None:
        return ((v > cut) if above else (v <= cut)).sum(-1)
    c = cut.item() if isinstance(cut, torch.Tensor) else cut  # a Python number: exact
    return torch.from_numpy(count_rows(x > c if above else x <= c))


BYTE_SUM = np.uint64(0x0101010101010101)  # times a word of bytes: their sum in the top byte


def count_rows(b: np.ndarray) -> np.ndarray:
    """int64 [...]: the True entries of each row of a bool array [..., E]. Rows of 8-byte words
    (E a multiple of 8, below 256) are summed as words, each byte one entry (E / 8 adds; no byte
    exceeds E / 8, so no carries), then the 8 bytes of the sum folded by one multiply: on 64-wide
    router rows about 4x np.count_nonzero(axis=-1), which reduces byte by byte."""
    E = b.shape[-1] if b.ndim else 0
    if E == 0 or E % 8 or E > 255:
        return np.asarray(np.count_nonzero(b, axis=-1), dtype=np.int64)
    w = np.ascontiguousarray(b).view(np.uint64)  # [..., E // 8]
    acc = w[..., 0].copy()
    for j in range(1, E // 8):
        acc += w[..., j]
    return ((acc * BYTE_SUM) >> np.uint64(56)).astype(np.int64)


def smallest(values: torch.Tensor, k: int) -> torch.Tensor:
    """Indices [..., k] of the k smallest values along the last dim, ascending; ties go to the
    lower index (deterministic, so the fast calibrated path can reproduce it exactly). One
    torch.topk of k + 1 values decides every row whose k + 1 smallest are distinct and not NaN
    (the order of its first k is then unique); the other rows take a stable sort."""
    E = values.shape[-1]
    top = torch.topk(values, min(k + 1, E), dim=-1, largest=False, sorted=True)
    v = top.values
    tied = (v[..., 1:] == v[..., :-1]).any(-1) | v.isnan().any(-1)
    order = top.indices[..., :k]
    if bool(tied.any()):
        order[tied] = torch.sort(values[tied], dim=-1, stable=True).indices[..., :k]
    return order


def largest(values: torch.Tensor, k: int):
    """(values, indices) [..., k]: the k largest along the last dim, descending, ties to the
    lower index. Where nulls.as_numpy allows, values are float32 and none is NaN, one numpy sort
    of int64 keys (the float's bits made monotone, shifted left, with E - 1 - index in the low
    bits: distinct, so the order is the same on every machine) ranks them; on 64-wide router
    rows that is several times torch.topk. Otherwise torch.topk (which ranks NaN first)."""
    vn = as_numpy(values)
    if vn is None or vn.dtype != np.float32 or np.isnan(vn).any():
        return torch.topk(values, k, dim=-1, sorted=True)
    E = vn.shape[-1]
    shift, low = (E - 1).bit_length(), np.int64((1 << (E - 1).bit_length()) - 1)
    b = (vn + np.float32(0)).view(np.int32).astype(np.int64)  # -0.0 + 0.0 = +0.0
    key = ((b ^ ((b >> 31) & 0x7FFFFFFF)) << shift) | np.arange(E - 1, -1, -1)
    top = np.sort(key, axis=-1)[..., :-k - 1:-1]  # the k largest keys, descending
    i = torch.from_numpy((E - 1) - (top & low))
    return values.gather(-1, i), i


def naive_pvalues(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The seed's p = 1 - softmax(logits / T): a trap, not a p-value. The probabilities sum to 1,
    so at most one exceeds 1/2 and p_(2) >= 1/2 > 2 alpha / E for any alpha < 1/2: BH's k* <= 1,
    every token gets min_k experts (tests/moe_routing/test_moe_bh.py shows it)."""
    return 1.0 - torch.softmax(logits.float() / temperature, dim=-1)


def topk_route(logits: torch.Tensor, k: int, temperature: float = 1.0):
    """OLMoE's router: softmax over all E logits, keep the k largest (no renormalization)."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # [T, E]
    idx = torch.topk(probs, k, dim=-1).indices
    mask = torch.zeros_like(probs, dtype=torch.bool).scatter_(-1, idx, True)
    return mask, probs * mask


def topp_route(logits: torch.Tensor, p: float, max_k: int | None = None, temperature: float = 1.0):
    """Top-p (Huang et al. 2024): experts by descending probability until their mass reaches p."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    E = probs.shape[-1]
    max_k = E if max_k is None else max_k
    top, idx = torch.topk(probs, max_k, dim=-1)  # sorted descending
    before = top.cumsum(-1) - top  # mass of the experts ranked above each one
    keep = before < p  # include the expert that crosses p
    mask = torch.zeros_like(probs, dtype=torch.bool).scatter_(-1, idx, keep)
    return mask, probs * mask


def route(logits: torch.Tensor, routing: Routing, null=None):
    """Apply `routing` to logits [T, E]; `null` (a null's layer view) for calibrated BH. With
    `renorm` the weights are renormalized to sum to 1 over the selection."""
    mask, w = _route(logits, routing, null)
    if routing.renorm:
        w = w / w.sum(-1, keepdim=True).clamp(min=torch.finfo(w.dtype).tiny)
    return mask, w


def _route(logits: torch.Tensor, routing: Routing, null=None):
    if routing.method == "topk":
        return topk_route(logits, routing.k, routing.temperature)
    if routing.method == "topp":
        return topp_route(logits, routing.p, routing.max_k, routing.temperature)
    if routing.method == "threshold":
        return threshold_route(logits, routing, null)
    if routing.method != "bh":
        raise BenchlabError(f"routing {routing.name}: method: unknown {routing.method!r}")
    if routing.null == "naive":  # p = 1 - probs (naive_pvalues), the probs also the weights
        probs = torch.softmax(logits.float() / routing.temperature, dim=-1)
        mask = bh_select(1.0 - probs, routing.alpha, routing.min_k, routing.max_k)
        return mask, probs * mask
    if routing.null not in NULLS:
        raise BenchlabError(f"routing {routing.name}: null: unknown {routing.null!r} "
                            f"(known: naive, {', '.join(NULLS)})")
    if null is None:
        raise BenchlabError(f"routing {routing.name}: null: calibrated BH needs a null")
    # calibrated BH by the null's exact fast path (p-values never materialized); weights are
    # softmax(logits / T) on the selection
    mask = null.bh_select(logits, routing.alpha, routing.min_k, routing.max_k)
    x = logits.float()
    probs = torch.softmax(x / routing.temperature if routing.temperature != 1 else x, dim=-1)
    return mask, probs.mul_(mask)  # in place: probs is this call's own (x / 1 == x exactly)


def threshold_route(logits: torch.Tensor, routing: Routing, null):
    """The adaptive rule without BH: every expert whose calibrated p-value is <= alpha (one fixed
    cutoff per layer, no step-up), then the caps clip(count, min_k, max_k) keep the smallest
    p-values (ties to the lower index). With a pooled null P(p <= alpha) ~ alpha per (token,
    expert), so alpha = m / E aims at m experts per token: the frontier's threshold family is
    BH's own null and scores with a count-calibrated cutoff, to show what the step-up adds."""
    if null is None:
        raise BenchlabError(f"routing {routing.name}: null: a threshold needs a null")
    p = null.pvalues(logits)  # [T, E]
    k = (p <= routing.alpha).sum(-1).clamp(routing.min_k, routing.max_k)  # [T]
    mask = torch.zeros_like(p, dtype=torch.bool)
    if routing.max_k > 0:
        order = smallest(p, routing.max_k)  # [T, max_k]
        mask.scatter_(-1, order, torch.arange(routing.max_k, device=p.device) < k[:, None])
    probs = torch.softmax(logits.float() / routing.temperature, dim=-1)
    return mask, probs * mask
