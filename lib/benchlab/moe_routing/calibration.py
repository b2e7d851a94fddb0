"""The calibrated null: per-layer, per-expert empirical distributions of router logits.

Definition (stored with every run, reported in REPORT.md): on N calibration tokens run under the
baseline top-8 routing, layer l's router gives logits z[l, :, e] for expert e. For a new token
with logit x for expert e at layer l,

    p(x) = (1 + #{n : z[l, n, e] >= x}) / (N + 1)

the conformal upper-tail p-value of H0 "this token's affinity for e is a typical one". If the
token is exchangeable with the calibration tokens, P(p <= u) <= u; small p = unusual affinity.
Conformal p-values sharing one calibration set are PRDS, so BH controls FDR (Bates et al. 2023).

    python -c "import torch; from benchlab.moe_routing.calibration import EmpiricalNull; \
n = EmpiricalNull(torch.randn(2, 1000, 64)); print(n.layer(0).pvalues(torch.randn(3, 64)))"
"""

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..core.errors import BenchlabError
from .ladder import Ladder, canonical, order_keys


class NullLayer:
    """One layer's view: sorted calibration logits [E, N] -> p-values for logits [T, E]."""

    def __init__(self, sorted_logits: torch.Tensor):
        self.sorted = sorted_logits  # [E, N], ascending per expert
        self.n = sorted_logits.shape[-1]
        self._bh: dict[float, Ladder | None] = {}

    def pvalues(self, logits: torch.Tensor) -> torch.Tensor:
        """Exact p-values [T, E] (the reference; an N-way binary search per logit)."""
        return (self.search_ranks(logits) / (self.n + 1)).to(torch.float32)  # [T, E]

    def search_ranks(self, logits: torch.Tensor) -> torch.Tensor:
        """m = 1 + N - #{z < x} [T, E] (int64) by binary search; p = m / (N + 1)."""
        x = logits.to(self.sorted.device, self.sorted.dtype).T.contiguous()  # [E, T]
        return 1 + self.n - torch.searchsorted(self.sorted, x, side="left").T  # [T, E]

    def ranks(self, x: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
        """Exact ranks m of a few canonical logits x [n] for experts [n] (the ladder's tie-break):
        one searchsorted over every expert's calibration logits, keyed by (expert, value)."""
        if "_keys" not in self.__dict__:
            z = canonical(self.sorted)
            e = torch.arange(z.shape[0], device=z.device)[:, None].expand_as(z)
            self._keys = order_keys(z, e).view(-1)
        pos = torch.searchsorted(self._keys, order_keys(x, experts), side="left")
        return 1 + self.n - (pos - experts * self.n)

    def bh_select(self, logits: torch.Tensor, alpha: float, min_k: int = 1,
                  max_k: int | None = None) -> torch.Tensor:
        """Same mask as routers.bh_select(self.pvalues(logits), alpha, min_k, max_k), faster:
        a Ladder per alpha (built on first use) replaces the N-way search."""
        from .routers import bh_select

        if alpha not in self._bh:
            self._bh[alpha] = Ladder.build(self.sorted, alpha)
        ladder = self._bh[alpha]
        if ladder is None or logits.shape[-1] != ladder.E:
            return bh_select(self.pvalues(logits), alpha, min_k, max_k)
        return ladder.select(logits, min_k, max_k, self.ranks)


class EmpiricalNull:
    """Sorted calibration logits for every layer: tensor [L, E, N]."""

    def __init__(self, logits: torch.Tensor, meta: dict | None = None):
        """`logits` [L, N, E]: router logits of N calibration tokens at each of L layers."""
        if logits.dim() != 3 or logits.shape[1] < 2:
            raise BenchlabError(f"EmpiricalNull: logits: need [layers, tokens>=2, experts], "
                                f"got {tuple(logits.shape)}")
        self.sorted = logits.float().transpose(1, 2).sort(-1).values.contiguous()  # [L, E, N]
        self.meta = dict(meta or {})
        self.meta.update(layers=self.sorted.shape[0], experts=self.sorted.shape[1],
                         tokens=self.sorted.shape[2])

    def layer(self, i: int) -> NullLayer:
        layers = self.__dict__.setdefault("_layers", {})
        if i not in layers:
            layers[i] = NullLayer(self.sorted[i])
        return layers[i]

    def to(self, device) -> "EmpiricalNull":
        if self.sorted.device != torch.device(device):
            self.sorted = self.sorted.to(device)
            self._layers = {}
        return self

    def digest(self) -> str:
        return hashlib.sha256(self.sorted.cpu().numpy().tobytes()).hexdigest()[:16]

    def save(self, path) -> Path:
        """safetensors file (tensor `sorted_logits` [L, E, N]) with the meta as JSON metadata."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"sorted_logits": self.sorted.cpu().contiguous()}, str(path),
                  metadata={"meta": json.dumps(self.meta, sort_keys=True)})
        return path

    @classmethod
    def load(cls, path) -> "EmpiricalNull":
        path = Path(path)
        if not path.exists():
            raise BenchlabError(f"{path}: calibration null not found")
        try:
            tensors = load_file(str(path))
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                meta = json.loads((f.metadata() or {}).get("meta", "{}"))
        except Exception as e:  # safetensors raises several types for a bad file
            raise BenchlabError(f"{path}: not a calibration null ({type(e).__name__})") from None
        if "sorted_logits" not in tensors:
            raise BenchlabError(f"{path}: sorted_logits: missing")
        obj = cls.__new__(cls)
        obj.sorted = tensors["sorted_logits"].float()
        obj.meta = meta
        return obj
