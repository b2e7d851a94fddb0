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

from dataclasses import dataclass

import torch

from ..core.errors import BenchlabError
from ..core.registry import Registry
from .nulls import NULLS


@dataclass(frozen=True)
class Routing:
    """One routing configuration (a row of the seed's config table)."""

    name: str
    method: str  # "topk" | "topp" | "bh"
    k: int = 8  # top-k
    p: float = 0.4  # top-p mass
    alpha: float = 0.05  # BH false-discovery rate
    temperature: float = 1.0  # softmax temperature of the weights (and of the prob / naive p)
    min_k: int = 1
    max_k: int = 8
    null: str = "per_expert"  # a definition in nulls.NULLS, or "naive" (1 - softmax prob)
    renorm: bool = False  # mixing weights renormalized over the selection (norm_topk_prob)

    def __post_init__(self):
        where = f"routing {self.name}"
        if self.method not in ("topk", "topp", "bh"):
            raise BenchlabError(f"{where}: method: unknown {self.method!r} (topk, topp, bh)")
        if self.method == "bh":
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
        return self.method == "bh" and self.null != "naive"


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
    kstar = bh_threshold_index(pvalues, alpha)
    k = kstar.clamp(min_k, max_k)
    if min_k == 0 and max_k == E:  # no caps: the threshold set itself
        return pvalues <= (kstar.unsqueeze(-1).to(pvalues.dtype) / E) * alpha
    order = smallest(pvalues, max_k)  # [..., max_k]
    keep = torch.arange(max_k, device=pvalues.device) < k.unsqueeze(-1)  # [..., max_k]
    mask = torch.zeros_like(pvalues, dtype=torch.bool)
    return mask.scatter_(-1, order, keep)


def smallest(values: torch.Tensor, k: int) -> torch.Tensor:
    """Indices [..., k] of the k smallest values along the last dim, ascending; ties go to the
    lower index (deterministic, so the fast calibrated path can reproduce it exactly). Values
    >= 0 that are int64 (ranks) or float32 (p-values, whose bits are then monotone) are packed
    with their index into one int64 for torch.topk; other inputs take a stable sort."""
    E = values.shape[-1]
    idx = torch.arange(E, device=values.device)
    if values.dtype in (torch.int64, torch.float32) and not bool((values < 0).any()
                                                                  | values.isnan().any()):
        v = values if values.dtype == torch.int64 else values.view(torch.int32).long()
        return torch.topk(v * E + idx, k, dim=-1, largest=False, sorted=True).values % E
    return torch.sort(values, dim=-1, stable=True).indices[..., :k]


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


def bh_route(logits: torch.Tensor, pvalues: torch.Tensor | None, routing: Routing, null=None):
    """BH selection on given p-values (or, with `null` and pvalues None, on the calibrated ones
    via the null's exact fast path); weights are softmax(logits / T) on the selection."""
    if pvalues is None:
        mask = null.bh_select(logits, routing.alpha, routing.min_k, routing.max_k)
    else:
        mask = bh_select(pvalues, routing.alpha, routing.min_k, routing.max_k)
    probs = torch.softmax(logits.float() / routing.temperature, dim=-1)
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
    if routing.method != "bh":
        raise BenchlabError(f"routing {routing.name}: method: unknown {routing.method!r}")
    if routing.null == "naive":
        return bh_route(logits, naive_pvalues(logits, routing.temperature), routing)
    if routing.null not in NULLS:
        raise BenchlabError(f"routing {routing.name}: null: unknown {routing.null!r} "
                            f"(known: naive, {', '.join(NULLS)})")
    if null is None:
        raise BenchlabError(f"routing {routing.name}: null: calibrated BH needs a null")
    return bh_route(logits, None, routing, null)  # calibrated p-values, never materialized
