"""Routing configurations inside a transformers 5.x OLMoE model.

Each `OlmoeSparseMoeBlock` is replaced by a `RoutedMoeBlock` (a subclass) whose gate is a
`RoutedRouter` (a subclass of `OlmoeTopKRouter`, so output_router_logits still records it) sharing
the original weights. The router returns its selection mask; the block takes the (token, expert)
pairs from it already grouped by expert (mask.T.nonzero()) and `dispatch` runs each expert once
on its own tokens (one grouped matmul, torch._grouped_mm where available), so unselected experts
cost nothing and every routing (top-k, top-p, BH) goes through the same dispatch. Apply before the
first forward (transformers installs its output hooks then).

    python -m benchlab.moe_routing.model   # routes a random tiny OLMoE with bh_moderate
"""

from dataclasses import asdict

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.olmoe.modeling_olmoe import OlmoeSparseMoeBlock, OlmoeTopKRouter

from ..core.errors import BenchlabError
from .calibration import EmpiricalNull, make_null
from .nulls import NULLS
from .routers import ROUTINGS, Routing, route


class RoutingStats:
    """Per-layer counts of experts per token and per-expert usage, filled while enabled."""

    def __init__(self, layers: int, experts: int):
        self.counts: list[list[torch.Tensor]] = [[] for _ in range(layers)]  # [T_i] per call
        self.usage = torch.zeros(layers, experts, dtype=torch.int64)  # [L, E]
        self.logits: list[list[torch.Tensor]] | None = None  # [T_i, E] per call when kept

    def add(self, layer: int, mask: torch.Tensor, logits: torch.Tensor) -> None:
        self.counts[layer].append(mask.sum(-1).cpu())
        self.usage[layer] += mask.sum(0).cpu()
        if self.logits is not None:
            self.logits[layer].append(logits.float().cpu())

    def per_token(self) -> torch.Tensor:
        """Experts per (token, layer) as one flat float tensor."""
        return torch.cat([torch.cat(c) for c in self.counts if c]).float()


class RoutedRouter(OlmoeTopKRouter):
    def __init__(self, gate: OlmoeTopKRouter, layer: int, routing: Routing, null: EmpiricalNull):
        nn.Module.__init__(self)
        self.weight = gate.weight  # shared [E, H]
        self.num_experts, self.hidden_dim = gate.num_experts, gate.hidden_dim
        self.layer_idx = layer
        self.stats: RoutingStats | None = None
        self.on_logits = None  # calibration hook: on_logits(router, logits) before routing
        self.set_routing(routing, null)

    def set_routing(self, routing: Routing, null: EmpiricalNull | None) -> None:
        self.routing = routing
        self.null = null.layer(self.layer_idx) if null is not None else None
        self.top_k = routing.k if routing.method == "topk" else routing.max_k  # slots per token

    def forward(self, hidden_states):
        """-> (router logits [T, E], selection mask [T, E], weights [T, E], zero off the mask)."""
        hidden_states = hidden_states.reshape(-1, self.hidden_dim)  # [T, H]
        logits = F.linear(hidden_states, self.weight)  # [T, E]
        if self.on_logits is not None:
            self.on_logits(self, logits)
        mask, weights = route(logits, self.routing, self.null)  # [T, E] bool, [T, E]
        if self.stats is not None:
            self.stats.add(self.layer_idx, mask, logits)
        return logits, mask, weights.to(logits.dtype)


def expert_matmul(x: torch.Tensor, w: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Rows of x [n, A] grouped by expert (counts [E], summing to n) times their expert's
    w [E, A, B] -> [n, B]: torch._grouped_mm where it runs (CPU float32; CUDA bf16 on sm90+),
    else a loop over the experts that have rows."""
    if hasattr(torch, "_grouped_mm") and (x.device.type == "cpu"
                                          or x.dtype == torch.bfloat16):
        try:
            return torch._grouped_mm(x, w, offs=counts.cumsum(0).to(torch.int32))
        except RuntimeError:  # unsupported device / dtype / alignment: the loop below
            pass
    outs, start = [], 0
    for e, c in enumerate(counts.tolist()):
        if c:
            outs.append(x[start:start + c] @ w[e])
            start += c
    return torch.cat(outs) if outs else x.new_zeros(0, w.shape[-1])


def dispatch(experts: nn.Module, x: torch.Tensor, token: torch.Tensor, counts: torch.Tensor,
             weight: torch.Tensor) -> torch.Tensor:
    """Sum over pairs of weight * expert(x[token]) into [T, H]: x [T, H]; token [n] grouped by
    expert (counts [E]); weight [n]. Only the n real (token, expert) pairs are computed."""
    out = torch.zeros_like(x)
    if token.numel() == 0:
        return out
    xs = x.index_select(0, token)  # [n, H]
    gate, up = expert_matmul(xs, experts.gate_up_proj.transpose(1, 2), counts).chunk(2, dim=-1)
    h = experts.act_fn(gate) * up  # [n, I]
    y = expert_matmul(h, experts.down_proj.transpose(1, 2), counts)  # [n, H]
    return out.index_add_(0, token, y * weight.unsqueeze(-1).to(x.dtype))


def grouped_experts(experts: nn.Module, x: torch.Tensor, index: torch.Tensor,
                    weights: torch.Tensor) -> torch.Tensor:
    """Sum_k w[t,k] expert_{index[t,k]}(x[t]) computing only real (token, expert) pairs.

    x [T, H]; index [T, K] with sentinel E for empty slots; weights [T, K]."""
    T, K = index.shape
    E = experts.num_experts
    flat = index.reshape(-1)  # [T*K]
    order = torch.argsort(flat, stable=True)  # sentinels (E) sort last
    counts = torch.bincount(flat, minlength=E + 1)[:E]
    order = order[:int(counts.sum())]
    return dispatch(experts, x, order // K, counts, weights.reshape(-1)[order])


def experts_row_major(experts: nn.Module) -> None:
    """Store the expert weights so that their transposes [E, H, 2I] and [E, I, H] are
    contiguous (same values and shapes): CPU matmuls with few rows per expert run ~2x faster."""
    for name in ("gate_up_proj", "down_proj"):
        p = getattr(experts, name)
        if p.device.type == "cpu" and not p.transpose(1, 2).is_contiguous():
            p.data = p.data.transpose(1, 2).contiguous().transpose(1, 2)


class RoutedMoeBlock(OlmoeSparseMoeBlock):
    def __init__(self, block: OlmoeSparseMoeBlock, layer: int, routing: Routing,
                 null: EmpiricalNull | None):
        nn.Module.__init__(self)
        self.gate = RoutedRouter(block.gate, layer, routing, null)
        self.experts = block.experts
        experts_row_major(self.experts)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Pairs from the mask, already grouped by expert (then token): no sort, no padding."""
        B, S, H = hidden_states.shape
        flat = hidden_states.view(-1, H)
        _, mask, weights = self.gate(flat)  # [T, E] each
        pairs = mask.T.nonzero()  # [n, 2] (expert, token), sorted by expert
        counts = mask.sum(0)  # [E]
        w = weights.T[pairs[:, 0], pairs[:, 1]]
        return dispatch(self.experts, flat, pairs[:, 1], counts, w).view(B, S, H)


def moe_blocks(model) -> list:
    return [layer.mlp for layer in model.model.layers]


def apply_routing(model, routing: Routing | str, null: EmpiricalNull | None = None):
    """Route every MoE layer of `model` with `routing` (a Routing or a name in ROUTINGS)."""
    routing = ROUTINGS.get(routing) if isinstance(routing, str) else routing
    if null is not None:
        null.to(model.device)
    for i, layer in enumerate(model.model.layers):
        if isinstance(layer.mlp, RoutedMoeBlock):
            layer.mlp.gate.set_routing(routing, null)
        else:
            layer.mlp = RoutedMoeBlock(layer.mlp, i, routing, null)
    return model


class collect_stats:
    """Context manager: `with collect_stats(model) as st:` fills a RoutingStats."""

    def __init__(self, model, keep_logits: bool = False):
        cfg = model.config
        self.model = model
        self.stats = RoutingStats(cfg.num_hidden_layers, cfg.num_experts)
        if keep_logits:
            self.stats.logits = [[] for _ in range(cfg.num_hidden_layers)]

    def __enter__(self) -> RoutingStats:
        for block in moe_blocks(self.model):
            block.gate.stats = self.stats
        return self.stats

    def __exit__(self, *exc):
        for block in moe_blocks(self.model):
            block.gate.stats = None


@torch.no_grad()
def calibrate(model, ids: torch.Tensor, definition: str = "per_expert", *,
              temperature: float = 1.0, under: Routing | str = "topk_8",
              meta: dict | None = None) -> EmpiricalNull:
    """The null of `definition` from the router logits of calibration tokens `ids` [B, S],
    calibrated under the routing `under`: all B x S tokens go through the model in one forward,
    and at each layer l the null of l is built from these tokens' layer-l logits before layer l
    routes them, so layers below l are routed by `under` with their own just-built nulls (when
    `under` is a BH routing of this definition and temperature), as in the routing tested."""
    under = ROUTINGS.get(under) if isinstance(under, str) else under
    NULLS.get(definition)
    self_routed = (under.calibrated and under.null == definition
                   and under.temperature == temperature)
    if under.calibrated and not self_routed:
        raise BenchlabError(f"calibrate: under: routing {under.name} uses null {under.null} at "
                            f"temperature {under.temperature}, not {definition} at {temperature}")
    from tqdm.auto import tqdm

    built: dict[int, torch.Tensor] = {}
    apply_routing(model, under)
    gates = [block.gate for block in moe_blocks(model)]
    # one forward of every calibration token: a paper-scale one takes minutes on a CPU, so its
    # layers show as they are reached (the bar appears only after a few seconds)
    bar = tqdm(total=len(gates), desc=f"calibrating {definition} under {under.name}",
               unit="layer", delay=5, leave=False)

    def on_logits(router, logits):
        built[router.layer_idx] = logits.float()
        if self_routed:
            router.null = make_null(definition, logits.float()[None], temperature).layer(0)
        bar.update(1)

    for g in gates:
        g.on_logits = on_logits
    try:
        model.model(input_ids=ids.to(model.device), use_cache=False)  # no lm_head needed
    finally:
        bar.close()
        for g in gates:
            g.on_logits = None
        apply_routing(model, "topk_8")
    logits = torch.stack([built[i] for i in range(len(gates))])  # [L, N, E]
    return make_null(definition, logits, temperature,
                     {**(meta or {}), "routing": routing_meta(under)})


def routing_meta(routing: Routing) -> dict:
    """The routing a null was calibrated under, as stored in its metadata."""
    return asdict(routing)


def model_digest(model) -> str:
    """sha256 of the model's config (layers, experts, sizes), embedding and router weights:
    what a null depends on, cheap even for a 7B model (a null of another model fails it)."""
    import hashlib
    import json

    cfg = model.config
    h = hashlib.sha256(json.dumps({k: getattr(cfg, k, None) for k in (
        "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
        "num_experts", "num_experts_per_tok")}, sort_keys=True).encode())
    weights = [model.model.embed_tokens.weight] + [b.gate.weight for b in moe_blocks(model)]
    for w in weights:
        h.update(w.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


if __name__ == "__main__":
    from transformers import OlmoeConfig, OlmoeForCausalLM

    torch.manual_seed(0)
    cfg = OlmoeConfig(vocab_size=256, hidden_size=64, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=4, num_experts=64, num_experts_per_tok=8)
    m = OlmoeForCausalLM(cfg).eval()
    null = calibrate(m, torch.randint(0, 256, (4, 64)), under="bh_moderate")
    apply_routing(m, "bh_moderate", null)
    with collect_stats(m) as st:
        m(input_ids=torch.randint(0, 256, (1, 32)))
    print("mean experts per token:", st.per_token().mean().item())
