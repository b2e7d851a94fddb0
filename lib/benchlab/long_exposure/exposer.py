"""The exposer: how sparse each OPT or GPT-2 layer really is, per token and as unions.

    python -c "from benchlab import zoo; import torch; \
from benchlab.long_exposure.exposer import *; m = zoo.trained('opt-tiny'); \
ids = torch.randint(2, 4096, (2, 128)); print(expose(m, ids).summary())"

Forward hooks on the q / k projections and fc1 (any attention implementation, peft-wrapped
projections too) capture per layer:
    attn_in (B, L, C)  the q_proj / c_attn input (the attention predictors' input)
    q, k    (B, H, L, D)  projections; A = causal softmax(q k^T * D**-0.5) is recomputed in
                          float32, padded keys and keys of other documents masked
    mlp_in  (B, L, C)  the fc1 / c_fc input (the MLP predictors' input)
    act     (B, L, F)  act(fc1(mlp_in)), the layer's own activation (OPT relu, GPT-2 gelu_new)

Attention, per head, in blocks of 16 tokens, keeping attention mass `mass`:
    token keep     per query token: the fewest key blocks covering `mass` (largest first)
    block keep     per query row-block: union of its tokens' keeps (what the operator runs)
    pooled keep    the fewest blocks covering `mass` of the row-block's mean mass per key block
                   (the predictors' target)
    head / batch union   block keep OR-ed over a sequence's heads / over the batch
  densities count kept / causal blocks, so the documents count as sparsity; `attn_doc` is that
  structure alone (what an exact per-document dense attention computes).
MLP, neurons in blocks of `mlp_block`: a neuron is active where |act| > mlp_rel * its token's max
|act| (GELU is never exactly zero: nothing assumed sparse), a block where >= mlp_min_active of
its neurons are; per token, and OR-ed over a sequence's tokens / the batch. Per neuron:
`mlp_nonzero` (plain non-zero fraction), `mlp_neuron_token` and its unions.
METRICS: one density in [0, 1] per layer (sparsity = 1 - density).
"""

import contextlib
from dataclasses import dataclass, field, fields

import torch

from .ops_attn import BLOCK as ATTN_BLOCK
from .peft_methods import decoder_layers, parts


@dataclass(frozen=True)
class ExposerConfig:
    mass: float = 0.95  # attention mass each query token (or row-block) must keep
    attn_block: int = ATTN_BLOCK
    mlp_block: int = 64  # neurons per MLP block
    mlp_rel: float = 0.05  # a neuron is active above this fraction of its token's max act
    mlp_min_active: int = 1  # active neurons a block needs to be kept for a token


@dataclass
class Capture:
    """Per-layer tensors captured by `capture(model)` (see module docstring)."""
    heads: list = field(default_factory=list)
    attn_in: dict = field(default_factory=dict)
    q: dict = field(default_factory=dict)
    k: dict = field(default_factory=dict)
    mlp_in: dict = field(default_factory=dict)
    act: dict = field(default_factory=dict)
    docs: object = None  # documents.Docs of the captured batch (run_captured)


@contextlib.contextmanager
def capture(model):
    """Context manager: forward hooks fill a Capture while the model runs (removed on exit)."""
    cap, handles = Capture(), []

    def split(x, H):  # (B, L, H*D) -> (B, H, L, D)
        B, L, C = x.shape
        return x.detach().view(B, L, H, C // H).transpose(1, 2)

    for i, layer in enumerate(decoder_layers(model)):
        p = parts(layer)
        H = p.heads
        cap.heads.append(H)

        def q_hook(mod, inp, out, i=i, H=H):
            cap.attn_in[i] = inp[0].detach()
            cap.q[i] = split(out, H)

        def k_hook(mod, inp, out, i=i, H=H):
            cap.k[i] = split(out, H)

        def qkv_hook(mod, inp, out, qh=q_hook, kh=k_hook):  # GPT-2's c_attn: q, k, v at once
            q, k, _ = out.chunk(3, dim=-1)
            qh(mod, inp, q)
            kh(mod, inp, k)

        def fc1_hook(mod, inp, out, i=i, act=p.act):
            shape = cap.attn_in[i].shape[:2]
            cap.mlp_in[i] = inp[0].detach().reshape(*shape, -1)
            cap.act[i] = act(out.detach()).reshape(*shape, -1)

        if p.conv:
            handles.append(layer.attn.c_attn.register_forward_hook(qkv_hook))
        else:
            handles += [layer.self_attn.q_proj.register_forward_hook(q_hook),
                        layer.self_attn.k_proj.register_forward_hook(k_hook)]
        handles.append(p.fc1.register_forward_hook(fc1_hook))
    try:
        yield cap
    finally:
        for h in handles:
            h.remove()


def run_captured(model, ids: torch.Tensor, key_lengths=None, eos: int | None = None) -> Capture:
    """Run `model` on token ids (B, L) without grad, document-masked (an unpatched model is
    patched dense for the call), and return what the hooks captured."""
    from . import patch
    from .documents import Docs

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    eos = base.config.eos_token_id if eos is None else eos
    own = not patch.is_patched(model)
    if own:
        patch.patch(model, None, attn="sdpa", eos=eos)
    am = None
    if key_lengths is not None:
        am = (torch.arange(ids.shape[1]) < key_lengths[:, None]).long().to(ids.device)
    try:
        with torch.no_grad(), capture(model) as cap:
            model(input_ids=ids, attention_mask=am)
    finally:
        if own:
            patch.unpatch(model)
    cap.docs = Docs(ids, eos)
    return cap


def attention_probs(q, k, key_lengths=None, docs=None) -> torch.Tensor:
    """Causal softmax(q k^T / sqrt(D)) in float32, (B, H, L, L); padded keys and keys of other
    documents (`docs` (B, L) ids) get 0."""
    q, k = q.float(), k.float()
    L = q.shape[-2]
    s = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    m = torch.ones(L, L, dtype=torch.bool, device=q.device).tril()
    if key_lengths is not None:
        m = m & (torch.arange(L, device=q.device) < key_lengths[:, None, None, None])
    if docs is not None:
        m = m & (docs[:, None, :, None] == docs[:, None, None, :]).to(q.device)
    return torch.softmax(s.masked_fill(~m, float("-inf")), -1).nan_to_num(0.0)


def keep_by_mass(mass: torch.Tensor, target: float) -> torch.Tensor:
    """Bool mask over the last dim: the fewest largest entries whose sum reaches `target` times
    the row total (rows of zeros keep nothing)."""
    vals, order = mass.sort(-1, descending=True)
    total = vals.sum(-1, keepdim=True)
    before = vals.cumsum(-1) - vals  # mass of the entries ranked above this one
    keep_sorted = (before < target * total - 1e-7) & (vals > 0)
    return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)


def block_sum(x: torch.Tensor, block: int, dim: int = -1) -> torch.Tensor:
    """Sum over consecutive groups of `block` along `dim` (zero-padded to whole blocks)."""
    x = x.movedim(dim, -1)
    n = x.shape[-1]
    pad = -n % block
    if pad:
        x = torch.nn.functional.pad(x, (0, pad))
    return x.reshape(*x.shape[:-1], -1, block).sum(-1).movedim(-1, dim)


def pooled_block_mass(A: torch.Tensor, block: int, valid=None) -> torch.Tensor:
    """(B, H, L, L) -> (B, H, nr, nb): mean over each row-block's valid rows of the mass per
    key block."""
    tm = block_sum(A, block, -1)  # (B, H, L, nb): mass per key block
    L = A.shape[-1]
    if valid is None:
        valid = torch.ones(A.shape[0], L, dtype=torch.bool, device=A.device)
    w = valid[:, None, :, None].to(tm.dtype)
    num = block_sum(tm * w, block, -2)
    den = block_sum(w, block, -2).clamp_min(1)
    return num / den


@dataclass
class LayerSparsity:
    """Densities (kept / needed, in [0, 1]) of one layer, and the masks behind them."""
    attn_doc: float
    attn_token: float
    attn_block: float
    attn_pooled: float
    attn_head_union: float
    attn_batch_union: float
    mlp_nonzero: float
    mlp_neuron_token: float
    mlp_neuron_seq_union: float
    mlp_neuron_batch_union: float
    mlp_token: float
    mlp_seq_union: float
    mlp_batch_union: float
    attn_block_mask: torch.Tensor  # (B, H, nb, nb) bool, the block keep
    mlp_seq_mask: torch.Tensor  # (B, F // mlp_block) bool


METRICS = tuple(f.name for f in fields(LayerSparsity) if f.type is float)


def attention_sparsity(A, cfg: ExposerConfig, valid, docs=None) -> dict:
    """Attention densities and the block keep mask of one layer (A (B, H, L, L))."""
    B, H, L, _ = A.shape
    blk = cfg.attn_block
    nb = -(-L // blk)
    causal_b = torch.ones(nb, nb, dtype=torch.bool, device=A.device).tril()
    vb = block_sum(valid.float(), blk, -1) > 0  # (B, nb) row-blocks with a valid token
    lens = valid.sum(-1)  # (B,)
    # key blocks that hold a valid key: causal AND below the length
    kb_ok = (torch.arange(nb, device=A.device) * blk)[None, :] < lens[:, None]  # (B, nb)
    causal_ok = causal_b & vb[:, :, None] & kb_ok[:, None, :]  # (B, nb, nb)
    n_allowed = causal_ok.sum() * H  # densities count against causal (dense) blocks
    allowed = causal_ok
    if docs is not None:
        from .documents import block_mask

        allowed = causal_ok & block_mask(docs.to(A.device), blk)

    tm = block_sum(A, blk, -1)  # (B, H, L, nb)
    tok_keep = keep_by_mass(tm, cfg.mass) & valid[:, None, :, None]
    tok_blk = torch.arange(L, device=A.device) // blk
    tok_allowed = (torch.arange(nb, device=A.device)[None, :] <= tok_blk[:, None])  # (L, nb)
    tok_allowed = tok_allowed[None, :, :] & kb_ok[:, None, :] & valid[:, :, None]  # (B, L, nb)
    attn_token = float(tok_keep.sum() / (tok_allowed.sum() * H))

    block_keep = block_sum(tok_keep.float(), blk, -2) > 0  # (B, H, nb, nb) union of rows
    pooled = pooled_block_mass(A, blk, valid)
    pooled_keep = keep_by_mass(pooled, cfg.mass) & allowed[:, None]
    head_union = block_keep.any(1)  # (B, nb, nb)
    batch_union = block_keep.any(0)  # (H, nb, nb) counted against the longest sequence
    longest = causal_ok.any(0)
    return dict(attn_doc=float(allowed.sum() * H / n_allowed), attn_token=attn_token,
                attn_block=float(block_keep.sum() / n_allowed),
                attn_pooled=float(pooled_keep.sum() / n_allowed),
                attn_head_union=float(head_union.sum() * H / n_allowed),
                attn_batch_union=float((batch_union & longest).sum() / (longest.sum() * H)),
                attn_block_mask=block_keep)


def mlp_active_blocks(act, cfg: ExposerConfig) -> torch.Tensor:
    """(B, L, F) activations -> (B, L, F // mlp_block) bool per-token block activity."""
    act = act.abs()
    top = act.amax(-1, keepdim=True)
    active = (act > cfg.mlp_rel * top) & (act > 0)
    return block_sum(active.float(), cfg.mlp_block, -1) >= cfg.mlp_min_active


def mlp_sparsity(act, cfg: ExposerConfig, valid) -> dict:
    tok = mlp_active_blocks(act, cfg) & valid[:, :, None]  # (B, L, nblk)
    nblk = tok.shape[-1]
    n_tok = valid.sum()
    seq = tok.any(1)  # (B, nblk)
    neuron = mlp_active_blocks(act, ExposerConfig(mlp_block=1, mlp_rel=cfg.mlp_rel))
    neuron = neuron & valid[:, :, None]  # (B, L, F)
    n_seq = neuron.any(1)
    return dict(mlp_nonzero=float(((act != 0) & valid[:, :, None]).sum()
                                  / (n_tok * act.shape[-1])),
                mlp_neuron_token=float(neuron.sum() / (n_tok * act.shape[-1])),
                mlp_neuron_seq_union=float(n_seq.float().mean()),
                mlp_neuron_batch_union=float(n_seq.any(0).float().mean()),
                mlp_token=float(tok.sum() / (n_tok * nblk)),
                mlp_seq_union=float(seq.float().mean()),
                mlp_batch_union=float(seq.any(0).float().mean()),
                mlp_seq_mask=seq)


@dataclass
class Exposure:
    layers: list[LayerSparsity]

    def metrics(self) -> dict:
        """{metric name: [density per layer]} for `record`."""
        return {m: [getattr(layer, m) for layer in self.layers] for m in METRICS}

    def summary(self) -> dict:
        """{metric name: mean density over layers}."""
        return {m: sum(v) / len(v) for m, v in self.metrics().items()}


def expose_captured(cap: Capture, cfg: ExposerConfig = ExposerConfig(),
                    key_lengths=None) -> Exposure:
    """Sparsity of every captured layer."""
    out = []
    for i in sorted(cap.q):
        q, act = cap.q[i], cap.act[i]
        B, _, L, _ = q.shape
        valid = torch.ones(B, L, dtype=torch.bool, device=q.device)
        if key_lengths is not None:
            valid = torch.arange(L, device=q.device) < key_lengths.to(q.device)[:, None]
        docs = cap.docs.ids if cap.docs is not None else None
        A = attention_probs(q, cap.k[i], key_lengths, docs)
        a = attention_sparsity(A, cfg, valid, docs)
        m = mlp_sparsity(act.float(), cfg, valid)
        out.append(LayerSparsity(**a, **m))
    return Exposure(out)


def expose(model, ids: torch.Tensor, cfg: ExposerConfig = ExposerConfig(),
           key_lengths=None) -> Exposure:
    """Run `model` on ids (B, L) and measure every layer's sparsity (module docstring)."""
    return expose_captured(run_captured(model, ids, key_lengths), cfg, key_lengths)
