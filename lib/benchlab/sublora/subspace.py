"""SubLoRA: the LoRA parameters live in a random subspace, theta = theta0 + P w, w in R^d.

    python -c "from benchlab import zoo; from benchlab.sublora.subspace import *; \
m = SubspaceModel(zoo.build('gpt2-tiny'), SubspaceConfig(intrinsic_dim=500, \
allocation_mode='learned'), seed=42); print(m.describe())"

Allocation of the budget d (w starts at zero, so training starts at the base model):
- `uniform`: one projector over all LoRA parameters (the original SubLoRA).
- `grouped`, `fixed`, `learned` split d over groups (each block, plus the lm_head when it has
  LoRA) in proportion to their LoRA parameter counts. `grouped`: one projector per group onto
  its A and B together (it differs from fixed/learned only in the A/B split).
- `fixed`: in group g, d_B = round(r d_g) coordinates feed a projector onto the group's LoRA **B**
  matrices and d_g - d_B onto its **A** matrices (r = 0.8 is B-heavy, as in the fork's code).
- `learned`: gamma_g = sigmoid(gate logit g_g) is group g's share of B: the soft mask
  m_i = sigmoid(C (gamma_g d_g - i - 1/2)) sends w_g * m to the B projector and w_g * (1 - m) to
  the A projector (both D x d_g). Gates have their own learning rate and cost 32 bits each.
Every projector has its own seed, derived from the run seed and its name ("h0.A", "h0.B", ...).
"""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from ..core.errors import fail
from .lora import LoRALinear, LoRAQV, add_lora
from .projectors import derive_seed, make_projector

MODES = ("uniform", "grouped", "fixed", "learned")


@dataclass(frozen=True)
class SubspaceConfig:
    intrinsic_dim: int = 1000
    allocation_mode: str = "uniform"   # one of MODES
    allocation_ratio: float = 0.5      # fixed: r = d_B / d in every group
    projector: str = "dense"           # dense | sparse | kron
    lora_r: int = 4
    lora_alpha: float = 32.0
    lm_head_lora: bool = False
    lora_dropout: float = 0.0
    gating_scale: float = 1.0          # C: steepness of the learned soft mask
    gating_init: float = 0.0           # initial gate logit (gamma = 0.5)
    dense_cache_mb: float = 256.0      # keep a dense P in memory below this size


@dataclass(frozen=True)
class Block:
    """One projector: coordinates w[start:stop] (learned: masked) -> the `params` of a group."""
    name: str            # "all", "h0.A", "h0.B", "head.A", ...
    params: tuple        # LoRA parameter names, in model order
    D: int
    start: int
    stop: int
    gate: int = -1       # learned mode: index of the group's gate; side via name
    side: str = ""       # "A" | "B" | "" (uniform)


def _group_of(name: str) -> str:
    parts = name.split(".")
    return f"h{parts[parts.index('h') + 1]}" if "h" in parts else "head"


def _split(total: int, weights: list[int]) -> list[int]:
    """Largest-remainder split of `total` in proportion to `weights`."""
    raw = [total * w / sum(weights) for w in weights]
    out = [int(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: out[i] - raw[i])[: total - sum(out)]:
        out[i] += 1
    return out


def plan_blocks(shapes: dict[str, int], cfg: SubspaceConfig) -> tuple[list[Block], list[str]]:
    """The projector blocks and the group names (one gate each in learned mode)."""
    if cfg.allocation_mode not in MODES:
        raise ValueError(f"unknown allocation_mode {cfg.allocation_mode!r}; choose {MODES}")
    d = cfg.intrinsic_dim
    if cfg.allocation_mode == "uniform":
        return [Block("all", tuple(shapes), sum(shapes.values()), 0, d)], []
    groups: dict[str, dict[str, list[str]]] = {}
    for n in shapes:
        side = "A" if ".lora_A" in n else "B"
        groups.setdefault(_group_of(n), {"A": [], "B": []})[side].append(n)
    names = list(groups)
    sizes = _split(d, [sum(shapes[n] for s in g.values() for n in s) for g in groups.values()])
    blocks, start = [], 0
    for gi, (gname, d_g) in enumerate(zip(names, sizes, strict=True)):
        sides = groups[gname]
        if cfg.allocation_mode == "grouped":  # one projector: the group's params in model order
            ps = tuple(n for n in shapes if _group_of(n) == gname)
            blocks.append(Block(gname, ps, sum(shapes[n] for n in ps), start, start + d_g))
            start += d_g
            continue
        if cfg.allocation_mode == "fixed":
            d_B = round(cfg.allocation_ratio * d_g)
            spans = {"A": (start, start + d_g - d_B), "B": (start + d_g - d_B, start + d_g)}
        else:
            spans = {"A": (start, start + d_g), "B": (start, start + d_g)}
        for side in ("A", "B"):
            ps = tuple(sides[side])
            blocks.append(Block(f"{gname}.{side}", ps, sum(shapes[n] for n in ps), *spans[side],
                                gate=gi if cfg.allocation_mode == "learned" else -1, side=side))
        start += d_g
    return blocks, names if cfg.allocation_mode == "learned" else []


class SubspaceModel(nn.Module):
    """A GPT-2 LM whose LoRA weights are theta0 + P w. forward(idx (B,T)) -> logits (B,T,V)."""

    def __init__(self, base: nn.Module, cfg: SubspaceConfig, *, seed: int):
        super().__init__()
        self.cfg, self.seed = cfg, seed
        self.names = add_lora(base, rank=cfg.lora_r, alpha=cfg.lora_alpha,
                              lm_head=cfg.lm_head_lora, seed=derive_seed(seed, "lora_init"),
                              dropout=cfg.lora_dropout)
        self.net = base
        params = dict(base.named_parameters())
        self.blocks, self.groups = plan_blocks({n: params[n].numel() for n in self.names}, cfg)
        for n in self.names:  # theta0 is fixed: LoRA tensors become plain (frozen) data
            params[n].requires_grad_(False)
        self.D = sum(params[n].numel() for n in self.names)
        if cfg.intrinsic_dim > self.D:  # w and P would be larger than the LoRA tensors
            raise fail("config", "sublora.intrinsic_dim", f"{cfg.intrinsic_dim} exceeds the "
                       f"{self.D} LoRA parameters it spans (D); choose d <= {self.D}")
        self.w = nn.Parameter(torch.zeros(cfg.intrinsic_dim))
        self.gates = nn.Parameter(torch.full((len(self.groups),), float(cfg.gating_init)),
                                  requires_grad=bool(self.groups))
        self.projectors = [
            make_projector(cfg.projector, b.D, b.stop - b.start, derive_seed(seed, "P", b.name),
                           cache_mb=cfg.dense_cache_mb)
            for b in self.blocks]

    def train(self, mode: bool = True):
        """Only the LoRA dropout follows `mode`; the frozen base stays in eval mode."""
        super().train(mode)
        self.net.eval()
        for mod in self.net.modules():
            if isinstance(mod, LoRAQV | LoRALinear):
                mod.train(mode)
        return self

    # -- theta ----------------------------------------------------------------------------
    def gamma(self) -> torch.Tensor:
        """(n_groups,) share of each group's coordinates that goes to its B matrices."""
        return torch.sigmoid(self.gates)

    def block_input(self, b: Block, w: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        x = w[b.start:b.stop]
        if b.gate < 0:
            return x
        n = b.stop - b.start
        idx = torch.arange(n, device=x.device, dtype=x.dtype)
        k = torch.sigmoid(gates[b.gate]) * n
        mask = torch.sigmoid(self.cfg.gating_scale * (k - idx - 0.5))  # ~1 on the first k coords
        return x * (mask if b.side == "B" else 1 - mask)

    def lora_tensors(self, w=None, gates=None) -> dict[str, torch.Tensor]:
        """{LoRA parameter name: theta0 + (P w) slice} for the given (or own) w and gates."""
        w = self.w if w is None else w
        gates = self.gates if gates is None else gates
        params = dict(self.net.named_parameters())
        out = {}
        for b, proj in zip(self.blocks, self.projectors, strict=True):
            delta = proj(self.block_input(b, w, gates)) if b.stop > b.start else None
            offset = 0
            for n in b.params:
                p = params[n]
                out[n] = p if delta is None else p + delta[offset:offset + p.numel()].view_as(p)
                offset += p.numel()
        return out

    def net_forward(self, idx, theta: dict) -> torch.Tensor:
        """Logits (B, T, V) of the base net with the LoRA tensors `theta`."""
        return functional_call(self.net, theta, (idx,)).logits

    def forward(self, idx, w=None, gates=None):
        return self.net_forward(idx, self.lora_tensors(w, gates))

    def loss(self, idx, targets, w=None, gates=None):
        logits = self(idx, w, gates)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    # -- bookkeeping ----------------------------------------------------------------------
    def describe(self) -> dict:
        """Layout facts for metadata and reports (JSON-able)."""
        return {"D": self.D, "d": self.cfg.intrinsic_dim, "mode": self.cfg.allocation_mode,
                "groups": self.groups,
                "blocks": [{"name": b.name, "D": b.D, "d": b.stop - b.start,
                            "seed": p.seed} for b, p in zip(self.blocks, self.projectors,
                                                            strict=True)]}

    def d_share_B(self) -> list[float]:
        """Per group: share of coordinates on B (learned: gamma; fixed: d_B/d_g; uniform: [])."""
        if self.cfg.allocation_mode == "learned":
            return [float(x) for x in self.gamma().detach()]
        out = []
        for gname in dict.fromkeys(b.name.split(".")[0] for b in self.blocks if b.side):
            a, bb = (next(b for b in self.blocks if b.name == f"{gname}.{s}") for s in "AB")
            out.append((bb.stop - bb.start) / max(1, bb.stop - a.start))
        return out
