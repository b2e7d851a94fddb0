"""Calibrated nulls: empirical distributions of router scores (nulls.py defines them).

Per-expert definition: on N calibration tokens, layer l's router gives logits z[l, :, e] for
expert e (layers below l routed by the routing being tested: model.calibrate). For a new token
with logit x for expert e at layer l,

    p(x) = (1 + #{n : z[l, n, e] >= x}) / (N + 1)

the conformal upper-tail p-value of H0 "this token's affinity for e is a typical one". If the
token is exchangeable with the calibration tokens, P(p <= u) <= u; small p = unusual affinity.
Conformal p-values sharing one calibration set are PRDS, so BH controls FDR (Bates et al. 2023).
Pooled definitions use one distribution per layer of all N x E scores (PooledLayer).

A null file (safetensors) carries its metadata: model digest, layers, experts, tokens, the
definition, its temperature, and the routing it was calibrated under; `load` checks the
tensor (shape, finite, sorted) and every field against what the caller expects, each mismatch a
one-line BenchlabError naming the file and field. `save` writes a temp file and renames it.

    python -c "import torch; from benchlab.moe_routing.calibration import EmpiricalNull; \
n = EmpiricalNull(torch.randn(2, 1000, 64)); print(n.layer(0).pvalues(torch.randn(3, 64)))"
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..core.errors import BenchlabError
from ..core.store import atomic_path
from .ladder import Ladder
from .nulls import NULLS, as_numpy, scores


class NullLayer:
    """One layer's view: sorted calibration logits [E, N] -> p-values for logits [T, E]."""

    def __init__(self, sorted_logits: torch.Tensor):
        self.sorted = sorted_logits  # [E, N], ascending per expert
        self.n = sorted_logits.shape[-1]
        self._bh: dict[float, Ladder | None] = {}

    def pvalues(self, logits: torch.Tensor) -> torch.Tensor:
        """Exact p-values [T, E] (the reference; an N-way binary search per logit):
        p = m / (N + 1) with m = 1 + N - #{z < x}."""
        x = logits.to(self.sorted.device, self.sorted.dtype).T.contiguous()  # [E, T]
        m = 1 + self.n - torch.searchsorted(self.sorted, x, side="left").T  # [T, E] int64
        return (m / (self.n + 1)).to(torch.float32)

    def bh_select(self, logits: torch.Tensor, alpha: float, min_k: int = 1,
                  max_k: int | None = None) -> torch.Tensor:
        """Same mask as routers.bh_select(self.pvalues(logits), alpha, min_k, max_k); on CPU
        faster: a Ladder per alpha (built on first use) replaces the N-way search."""
        from .routers import bh_select

        if logits.device.type == "cpu" and logits.shape[-1] == self.sorted.shape[0]:
            if alpha not in self._bh:
                self._bh[alpha] = Ladder.build(self.sorted, alpha)
            if self._bh[alpha] is not None:
                return self._bh[alpha].select(logits, min_k, max_k)
        return bh_select(self.pvalues(logits), alpha, min_k, max_k)

    def kstar(self, logits: torch.Tensor, alpha: float) -> torch.Tensor:
        """k* [T] of the BH step-up on the exact p-values (before the caps)."""
        from .routers import bh_threshold_index

        return bh_threshold_index(self.pvalues(logits), alpha)


class PooledLayer:
    """One layer's pooled null: sorted calibration scores [n] of all experts -> p-values.

    The score is monotone in the logit within a token, so BH's set is a prefix of the router's
    ranking: with c_k the score cut of BH's k-th threshold (p(s) <= (k / E) alpha  <=>  s > c_k),
    k* = max{k : #{e : s_e > c_k} >= k}, and the selection is the top clip(k*, min_k, max_k)
    scores (routers.largest). The top max_k scores decide k* themselves (the j-th largest passes
    iff s_(j) > c_j; routers.select_prefix) unless more than max_k pass c_E, so no search over
    the calibration scores; on CPU rows without NaN numpy does it all (routers.select_over_cuts,
    tested equal to select_prefix). Without caps that is
    exactly BH on `pvalues`; with caps it keeps the same count and the same p-values, breaking
    ties in p by score rather than by index (tests/moe_routing/test_moe_nulls.py)."""

    def __init__(self, sorted_scores: torch.Tensor, definition: str, temperature: float = 1.0):
        self.sorted = sorted_scores  # [n] ascending
        self.n = sorted_scores.shape[-1]
        self.definition, self.temperature = NULLS.get(definition), temperature
        self._cuts: dict[float, torch.Tensor] = {}

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return scores(logits.to(self.sorted.device), self.definition, self.temperature)

    def pvalues(self, logits: torch.Tensor) -> torch.Tensor:
        """Exact p-values [T, E] by binary search over the pooled calibration scores."""
        s = self.scores(logits).contiguous()
        m = 1 + self.n - torch.searchsorted(self.sorted, s.view(-1), side="left").view(s.shape)
        return (m / (self.n + 1)).to(torch.float32)

    def cuts(self, alpha: float, E: int) -> torch.Tensor:
        """c [E]: p(s) <= thr_k <=> s > c_k, with thr_k and p in float32 as bh_select has them."""
        if alpha not in self._cuts:
            dev, n = self.sorted.device, self.n
            pm = (torch.arange(1, n + 2, device=dev) / (n + 1)).to(torch.float32)
            thr = (torch.arange(1, E + 1, device=dev).to(torch.float32) / E) * alpha
            mk = torch.searchsorted(pm, thr, right=True)  # M_k = #{m : p(m) <= thr_k}
            c = self.sorted[(n - mk).clamp(0, n - 1)]
            c = torch.where(mk == 0, torch.inf, c)  # no rank qualifies: never
            self._cuts[alpha] = torch.where(mk > n, -torch.inf, c)  # every rank: always
        return self._cuts[alpha]

    def kstar(self, logits: torch.Tensor, alpha: float) -> torch.Tensor:
        """k* [T] of the BH step-up without p-values: #{e : s_e > c_k} >= k exactly when the
        k-th largest score s_(k) > c_k, so k* = max{k : s_(k) > c_k} (0 when none) over the
        scores sorted descending (numpy's sort where nulls.as_numpy allows)."""
        from .routers import sorted_kstar

        s = self.scores(logits).detach().nan_to_num(nan=-torch.inf)  # NaN passes no cut
        c = self.cuts(alpha, logits.shape[-1])
        sn, cn = as_numpy(s), as_numpy(c)
        if sn is not None and cn is not None:
            return torch.from_numpy(sorted_kstar(np.sort(sn, axis=-1)[..., ::-1], cn))
        srt = s.sort(-1, descending=True).values
        ks = torch.arange(1, s.shape[-1] + 1, device=s.device)
        return torch.where(srt > c, ks, 0).amax(-1)

    def bh_select(self, logits: torch.Tensor, alpha: float, min_k: int = 1,
                  max_k: int | None = None) -> torch.Tensor:
        from .routers import (
            check_bh_args,
            count_where,
            largest,
            row_max,
            select_over_cuts,
            select_prefix,
        )

        E = logits.shape[-1]
        max_k = check_bh_args(alpha, E, min_k, max_k)
        x = logits.reshape(-1, E)
        s, c = self.scores(x), self.cuts(alpha, E)
        sn, cn = as_numpy(s), as_numpy(c)
        if sn is not None and cn is not None and not np.isnan(sn).any():
            return torch.from_numpy(select_over_cuts(sn, cn, min_k, max_k)).view(logits.shape)

        def order(v, k):  # the k largest scores, descending
            return row_max(v) if k == 1 else largest(v, k)

        return select_prefix(s, order, lambda v: v > c[:v.shape[-1]],
                             lambda k: count_where(s, c[k - 1]), min_k, max_k
                             ).view(logits.shape)


class EmpiricalNull:
    """Per-expert null: sorted calibration logits for every layer, tensor [L, E, N]."""

    definition = "per_expert"

    def __init__(self, logits: torch.Tensor, meta: dict | None = None):
        """`logits` [L, N, E]: router logits of N calibration tokens at each of L layers."""
        if logits.dim() != 3 or logits.shape[1] < 2:
            raise BenchlabError(f"EmpiricalNull: logits: need [layers, tokens>=2, experts], "
                                f"got {tuple(logits.shape)}")
        self._init(logits.float().transpose(1, 2).sort(-1).values.contiguous(), meta)

    def _init(self, sorted_values: torch.Tensor, meta: dict | None, experts: int | None = None):
        self.sorted = sorted_values  # [L, E, N] (per expert) or [L, N * E] (pooled)
        self.meta = dict(meta or {})
        L, E = sorted_values.shape[0], experts or sorted_values.shape[1]
        self.meta.update(layers=L, experts=E, tokens=sorted_values[0].numel() // E,
                         definition=self.definition)
        self.meta.setdefault("temperature", 1.0)

    @classmethod
    def from_sorted(cls, sorted_values: torch.Tensor, meta: dict | None = None,
                    experts: int | None = None) -> "EmpiricalNull":
        obj = cls.__new__(cls)
        if cls is PooledNull:
            obj.definition = (meta or {})["definition"]
        obj._init(sorted_values, meta, experts)
        return obj

    def layer(self, i: int):
        layers = self.__dict__.setdefault("_layers", {})
        if i not in layers:
            layers[i] = self._layer(self.sorted[i])
        return layers[i]

    def _layer(self, sorted_values):
        return NullLayer(sorted_values)

    def to(self, device) -> "EmpiricalNull":
        if self.sorted.device != torch.device(device):
            self.sorted = self.sorted.to(device)
            self._layers = {}
        return self

    def digest(self) -> str:
        h = hashlib.sha256(self.sorted.cpu().numpy().tobytes())
        h.update(json.dumps(self.meta, sort_keys=True).encode())
        return h.hexdigest()[:16]

    def save(self, path) -> Path:
        """safetensors file (tensor `sorted_logits`) with the meta as JSON metadata, written to a
        temporary file and moved into place (a killed write leaves no partial null)."""
        path = Path(path)
        with atomic_path(path) as tmp:
            save_file({"sorted_logits": self.sorted.cpu().contiguous()}, str(tmp),
                      metadata={"meta": json.dumps(self.meta, sort_keys=True)})
        return path

    @classmethod
    def load(cls, path, expect: dict | None = None) -> "EmpiricalNull":
        """A null file, checked; `expect` maps meta fields to the values the caller needs."""
        path = Path(path)
        if not path.exists():
            raise BenchlabError(f"{path}: calibration null not found")
        try:
            from safetensors import safe_open

            tensors = load_file(str(path))
            with safe_open(str(path), "pt") as f:
                meta = json.loads((f.metadata() or {}).get("meta", "{}"))
        except Exception as e:  # safetensors raises several types for a bad file
            raise BenchlabError(f"{path}: not a calibration null ({type(e).__name__})") from None
        if not isinstance(meta, dict):
            raise BenchlabError(f"{path}: meta: not a JSON object")
        t = tensors.get("sorted_logits")
        if t is None:
            raise BenchlabError(f"{path}: sorted_logits: missing")
        for field in ("definition", "layers", "experts", "tokens"):
            if field not in meta:
                raise BenchlabError(f"{path}: meta.{field}: missing")
        if meta["definition"] not in NULLS:
            raise BenchlabError(f"{path}: meta.definition: unknown {meta['definition']!r}")
        pooled = NULLS.get(meta["definition"]).pooled
        L, E, N = (meta[k] for k in ("layers", "experts", "tokens"))
        want = (L, N * E) if pooled else (L, E, N)
        if tuple(t.shape) != want:
            raise BenchlabError(f"{path}: sorted_logits: shape {tuple(t.shape)}, meta says "
                                f"{want} (layers, experts, tokens)")
        t = t.float()
        if not bool(torch.isfinite(t).all()):
            raise BenchlabError(f"{path}: sorted_logits: holds NaN or infinite values")
        if t.numel() and not bool((t[..., 1:] >= t[..., :-1]).all()):
            raise BenchlabError(f"{path}: sorted_logits: not sorted ascending")
        for field, value in (expect or {}).items():
            if meta.get(field) != value:
                raise BenchlabError(f"{path}: meta.{field}: null has {meta.get(field)!r}, "
                                    f"expected {value!r}")
        klass = PooledNull if pooled else EmpiricalNull
        return klass.from_sorted(t, meta, E)


class PooledNull(EmpiricalNull):
    """Pooled null: per layer, the sorted scores of all N x E calibration (token, expert)."""

    def __init__(self, logits: torch.Tensor, definition: str, temperature: float = 1.0,
                 meta: dict | None = None):
        """`logits` [L, N, E]; scores under `definition` (nulls.py) are pooled per layer."""
        if logits.dim() != 3 or logits.shape[1] < 1:
            raise BenchlabError(f"PooledNull: logits: need [layers, tokens, experts], "
                                f"got {tuple(logits.shape)}")
        d = NULLS.get(definition)
        s = torch.stack([scores(x, d, temperature).reshape(-1) for x in logits])
        self.definition = definition
        self._init(s.sort(-1).values.contiguous(), {**(meta or {}), "temperature": temperature},
                   logits.shape[-1])

    def _layer(self, sorted_values):
        return PooledLayer(sorted_values, self.definition, self.meta["temperature"])


def make_null(definition: str, logits: torch.Tensor, temperature: float = 1.0,
              meta: dict | None = None) -> EmpiricalNull:
    """The null of `definition` from calibration logits [L, N, E]."""
    if NULLS.get(definition).pooled:
        return PooledNull(logits, definition, temperature, meta)
    return EmpiricalNull(logits, meta)
