"""p-value definitions as data: a registry of nulls, each a row in every table and figure.

A definition turns router logits [T, E] into scores (higher = more relevant) and says whether
the null distribution is one per expert or one per layer pooled over all experts. With n
calibration scores z (those of the expert, or of the whole layer) a score s gets the conformal
p-value p = (1 + #{z >= s}) / (n + 1).

- per_expert: score = logit, one null per (layer, expert). An expert is ranked by how unusual
  its logit is *for that expert*, not by the router's preference, so BH need not pick a prefix
  of the router's ranking (kept to show that defect).
- pooled: score = logit, one null per layer over every expert's logits. Monotone in the logit
  within a token, so BH takes a prefix of the router's ranking and decides only how many.
- within_token: score = (x - median(x)) / MAD(x) over the token's own E logits (robust
  standardization), pooled per layer. Monotone within a token; removes per-token shift/scale.
- prob: score = softmax(x / T), pooled per layer: a null over temperature-scaled probabilities,
  so the temperature changes the selection (bh_adaptive), not only the mixing weights.

    python -c "from benchlab.moe_routing.nulls import NULLS; print(list(NULLS))"
"""

from dataclasses import dataclass

import numpy as np
import torch

from ..core.registry import Registry


@dataclass(frozen=True)
class NullDef:
    name: str
    pooled: bool  # one null per layer over all experts (monotone within a token)
    score: str  # "logit" | "robust_z" | "prob"
    summary: str


NULLS = Registry("null definition")
for _d in (
    NullDef("per_expert", False, "logit", "per-(layer, expert) empirical null of the logit"),
    NullDef("pooled", True, "logit", "per-layer null pooled over all experts' logits"),
    NullDef("within_token", True, "robust_z",
            "per-layer pooled null of (logit - token median) / token MAD"),
    NullDef("prob", True, "prob", "per-layer pooled null of softmax(logits / T)"),
):
    NULLS.add(_d.name, _d)


NUMPY_DTYPES = (torch.float32, torch.float64, torch.int32, torch.int64, torch.bool)


def as_numpy(x: torch.Tensor) -> np.ndarray | None:
    """x's numpy view where numpy's row reductions may stand in for torch's (a CPU float32,
    float64, int32, int64 or bool tensor outside autograd), else None. On router-sized rows
    (4096 x 64) numpy's partition, argmax, count and sort are 2-9x faster on CPU than torch's."""
    if x.device.type != "cpu" or x.requires_grad or x.dtype not in NUMPY_DTYPES:
        return None
    return x.numpy()


def lower_median(x: torch.Tensor) -> torch.Tensor:
    """[..., 1] the lower median of the last dim, as torch.median takes it (NaN if any is NaN);
    numpy's sort where as_numpy allows (SIMD-sorted 64-wide rows: 0.6x np.partition's
    introselect, under 0.1x torch.median on 4096 x 64), so the within-token router stays near
    top-k."""
    k, xn = (x.shape[-1] - 1) // 2, as_numpy(x)
    if xn is None:
        return x.median(-1, keepdim=True).values
    med = torch.from_numpy(np.sort(xn, axis=-1)[..., k:k + 1])  # NaNs sort last
    if bool(x.isnan().any()):
        med = torch.where(x.isnan().any(-1, keepdim=True), torch.nan, med)
    return med


def robust_z(x: torch.Tensor) -> torch.Tensor:
    """(x - med) / max(mad, 1e-6) per row of x [..., E] (float32): med the lower median, mad the
    lower median of |x - med|. Where nulls.as_numpy allows and no row holds NaN, one numpy sort
    gives both: the k + 1 = (E + 1) // 2 smallest deviations lie in k + 1 neighbours of the sorted
    row around the median (the median itself deviates by 0, and deviations grow away from it on
    both sides), so mad = min over windows [a, a + k] (a = 0..k) of max(med - x_(a),
    x_(a + k) - med), the same floats as |x - med| (IEEE subtraction is sign-symmetric). On
    4096 x 64 router rows that is under half of two medians' cost (torch reduces the windows:
    numpy's row reductions over 32 are 15x slower)."""
    xn = as_numpy(x)
    if xn is None or np.isnan(xn).any():
        dev = x - lower_median(x)
        return dev / lower_median(dev.abs()).clamp(min=1e-6)
    k = (xn.shape[-1] - 1) // 2
    srt = torch.from_numpy(np.sort(xn, axis=-1))
    med = srt[..., k:k + 1]
    mad = torch.maximum(med - srt[..., :k + 1], srt[..., k:2 * k + 1] - med).amin(-1, True)
    return (x - med).div_(mad.clamp_(min=1e-6))


def scores(logits: torch.Tensor, definition: NullDef, temperature: float = 1.0) -> torch.Tensor:
    """Scores [T, E] float32 of logits [T, E] under `definition` (higher = more relevant)."""
    x = logits.float()
    if definition.score == "logit":
        return x
    if definition.score == "robust_z":
        return robust_z(x)
    if definition.score == "prob":
        return torch.softmax(x / temperature, dim=-1)
    raise ValueError(f"null {definition.name}: score: unknown {definition.score!r}")
