"""Long Exposure mode for Hugging Face OPT and GPT-2: each decoder layer's attention and MLP run
through the block-sparse operators (ops_attn, ops_mlp) with masks chosen per layer from the
layer's input. GPT-2 (GELU, nothing exactly zero) runs its MLP dense unless sparse_mlp=True.

    python -c "from benchlab import zoo; from benchlab.long_exposure.patch import *; \
m = zoo.build('opt-tiny'); patch(m, KeepAll()); import torch; \
print(m(torch.randint(0, 4096, (1, 64))).logits.shape)"

`patch(model, source, attn=...)` swaps every decoder layer's forward for `le_layer_forward`
(parameters and names stay, so checkpoints and peft wrappers are untouched). Rows are packed
documents: a decoder pre-hook reads each token's document from input_ids and eos_token_id
(documents.Docs), so attention in EVERY mode stays inside documents; HF's attention_mask is
unused and positions stay the row's. A mask source answers, for layer i, its normalized input
h (B, T, C) and the batch's `docs`:
    source.attn(i, h, docs) -> bool (B, H, T/16, T/16) kept blocks, or None for dense
    source.mlp(i, h, docs)  -> bool (B, F/block) kept neuron blocks, or None for the dense MLP
Kept blocks are AND-ed with the document blocks here, so no source can leak across documents.
Stats count attention blocks against the causal blocks, and the document blocks alone
(`density("doc")`: the free, structural density).
"""

import time
from dataclasses import dataclass, field

import torch

from benchlab.core.errors import BenchlabError

from . import ops_attn, ops_mlp
from .documents import Docs
from .peft_methods import FAMILIES, AdaptedLinear, decoder_layers, family, is_prefix, parts

ATTN_BLOCK = ops_attn.BLOCK
SPARSE_IMPLS = ("sparse", "flex")


@dataclass
class Stats:
    """What the patched layers did since the last reset: densities and predictor seconds."""
    attn_kept: int = 0
    attn_total: int = 0
    mlp_kept: int = 0
    mlp_total: int = 0
    doc_kept: int = 0  # document blocks (per head) of the attention calls, against attn_total
    docs: Docs | None = None  # the documents of the running forward (set by the decoder hook)
    mask_seconds: float = 0.0
    dense_runs: int = 0  # layer parts run dense because their mask was above `dense_above`
    per_layer: dict = field(default_factory=dict)  # layer -> {kind: [kept, total]}

    def density(self, kind: str) -> float:
        """kind attn | mlp | doc (document blocks / causal blocks); 1.0 when nothing ran."""
        kept, total = {"attn": (self.attn_kept, self.attn_total), "mlp": (self.mlp_kept,
                       self.mlp_total), "doc": (self.doc_kept, self.attn_total)}[kind]
        return kept / total if total else 1.0

    def add(self, layer: int, kind: str, kept: int, total: int) -> None:
        """Count `kept` of `total` blocks of `kind` (attn | mlp | doc, whose total is attn's)."""
        setattr(self, f"{kind}_kept", getattr(self, f"{kind}_kept") + kept)
        if kind != "doc":
            setattr(self, f"{kind}_total", getattr(self, f"{kind}_total") + total)
        acc = self.per_layer.setdefault(layer, {}).setdefault(kind, [0, 0])
        acc[0] += kept
        acc[1] += total

    def keeps_everything(self) -> bool:
        """Whether the masks kept every document and neuron block (the dense function)."""
        return self.attn_kept == self.doc_kept and self.mlp_kept == self.mlp_total

    def layer_densities(self, kind: str) -> list[float]:
        pairs = (self.per_layer[i].get(kind, (1, 1)) for i in sorted(self.per_layer))
        return [kept / total if total else 1.0 for kept, total in pairs]


class KeepAll:
    """Every causal attention block and every neuron block: the dense function, sparse code path."""

    def __init__(self, heads: int, ffn: int, mlp_block: int):
        self.heads, self.ffn, self.mlp_block = heads, ffn, mlp_block

    def attn(self, i, h, docs):
        return docs.blocks(ATTN_BLOCK)[:, None].expand(-1, self.heads, -1, -1)

    def mlp(self, i, h, docs):
        return torch.ones(h.shape[0], self.ffn // self.mlp_block, dtype=torch.bool,
                          device=h.device)


class RandomMasks:
    """Seeded random blocks at a density (a float, or one per layer), a fresh draw per call:
    attention kept / causal blocks, diagonal kept (then AND-ed with the documents), MLP kept /
    all neuron blocks."""

    def __init__(self, heads, ffn, mlp_block, attn_density, mlp_density, seed: int = 0):
        self.heads, self.ffn, self.mlp_block = heads, ffn, mlp_block
        self.attn_density, self.mlp_density = attn_density, mlp_density
        self.gen = torch.Generator().manual_seed(seed)

    @staticmethod
    def _at(d, i):
        return d[i] if isinstance(d, list | tuple) else d

    def attn(self, i, h, docs):
        B, T, _ = h.shape
        nb = T // ATTN_BLOCK
        n_off = nb * (nb - 1) // 2
        kept_off = self._at(self.attn_density, i) * nb * (nb + 1) / 2 - nb
        sparsity = 1.0 - min(max(kept_off / n_off, 0.0), 1.0) if n_off else 0.0
        return ops_attn.random_block_mask(B, self.heads, T, sparsity, ATTN_BLOCK,
                                          generator=self.gen, device=h.device)

    def mlp(self, i, h, docs):
        n = self.ffn // self.mlp_block
        sparsity = 1.0 - max(self._at(self.mlp_density, i), 1.0 / n)
        return ops_mlp.random_keep(n, sparsity, generator=self.gen,
                                   batch=h.shape[0]).to(h.device)


class Fixed:
    """Precomputed masks, one per layer (e.g. the exposer's): steps time no mask prediction."""

    def __init__(self, attn: list, mlp: list):
        self.attn_masks, self.mlp_masks = attn, mlp

    def attn(self, i, h, docs):
        return self.attn_masks[i].to(h.device)

    def mlp(self, i, h, docs):
        return self.mlp_masks[i].to(h.device)


class Parts:
    """Wrap a source and make one part dense: part 'attn' keeps the MLP dense and vice versa."""

    def __init__(self, source, part: str):
        if part not in ("attn", "mlp", "both"):
            raise BenchlabError(f"part: unknown {part!r}; choose attn, mlp or both")
        self.source, self.part = source, part

    def attn(self, i, h, docs):
        return self.source.attn(i, h, docs) if self.part in ("attn", "both") else None

    def mlp(self, i, h, docs):
        return self.source.mlp(i, h, docs) if self.part in ("mlp", "both") else None


@dataclass
class _LayerState:
    index: int
    source: object
    mlp_block: int
    stats: Stats
    dense_above: dict | None = None  # kind -> density above which the dense kernel runs
    attn: str = "sparse"  # attention implementation (module docstring)
    sparse_mlp: bool = True  # False: the MLP runs dense in LE mode (recorded as density 1.0)
    ffn: int = 0  # MLP width (neurons)


def _attention(parts, h, keep, st: _LayerState):
    """Self-attention on h (B, T, C) inside documents with kept blocks `keep` (None: st.attn
    for a dense patch, else SDPA with the document mask)."""
    docs = st.stats.docs
    B, T, C = h.shape
    H = parts.heads
    q, k, v = (x.view(B, T, H, C // H).transpose(1, 2) for x in parts.qkv(h))  # (B, H, T, D)
    impl = st.attn if st.source is None else ("sdpa" if keep is None else st.attn)
    if impl == "sparse":
        o = ops_attn.block_sparse_attention(q, k, v, keep, causal=True, scale=1.0,
                                           block=ATTN_BLOCK, docs=docs.ids)
    elif impl == "flex":
        from . import flex

        o = flex.attention(q, k, v, flex.block_mask(docs.ids, H, keep), scale=1.0)
    else:
        o = ops_attn.document_attention(q, k, v, docs, impl, scale=1.0)
    return parts.out(o.transpose(1, 2).reshape(B, T, C))


def _mlp(parts, h, keep, mlp_block):
    """The MLP on h (B, T, C) over kept neuron blocks `keep` (B, F/block), None for dense.
    GELU (GPT-2): a dropped neuron is not zero, so this approximates the dense MLP."""
    if keep is None:
        return parts.fc2(parts.act(parts.fc1(h)))
    fc1, fc2 = parts.fc1, parts.fc2
    base2 = fc2.base if isinstance(fc2, AdaptedLinear) else fc2
    if not parts.conv:
        y = ops_mlp.block_sparse_mlp(h, fc1.weight, fc1.bias, base2.weight, base2.bias, keep,
                                     mlp_block)
    else:  # Conv1D: weight (in, out)
        rows = []
        for b in range(h.shape[0]):
            idx = ops_mlp.keep_to_index(keep[b], mlp_block)
            a = parts.act(torch.addmm(fc1.bias[idx], h[b], fc1.weight[:, idx]))
            rows.append(torch.addmm(base2.bias, a, base2.weight[idx]))
        y = torch.stack(rows)
    return fc2.adapter(y) if isinstance(fc2, AdaptedLinear) else y


def _masks(st: _LayerState, kind: str, h):
    if st.source is None:
        return None
    docs = st.stats.docs
    t0 = time.perf_counter()
    with torch.no_grad():
        keep = getattr(st.source, kind)(st.index, h.detach(), docs)
        if keep is not None and kind == "attn":
            nb = -(-h.shape[1] // ATTN_BLOCK)
            if keep.dim() != 4 or keep.shape[0] != h.shape[0] or keep.shape[2:] != (nb, nb):
                raise BenchlabError(f"attention mask: shape {tuple(keep.shape)}, expected "
                                    f"(B, H, {nb}, {nb}) for B={h.shape[0]}, L={h.shape[1]}")
            keep = keep & docs.blocks(ATTN_BLOCK)[:, None]  # never across documents
    st.stats.mask_seconds += time.perf_counter() - t0
    if keep is not None:
        kept, total = int(keep.sum()), keep.numel()
        if kind == "attn":  # against the causal blocks
            nb = keep.shape[-1]
            total = keep.shape[0] * keep.shape[1] * nb * (nb + 1) // 2
        st.stats.add(st.index, kind, kept, total)
        if kind == "attn":
            doc = int(docs.blocks(ATTN_BLOCK).sum()) * keep.shape[1]
            st.stats.add(st.index, "doc", doc, total)
        if st.dense_above is not None and kept > _break_even(st.dense_above, kind, h) * total:
            st.stats.dense_runs += 1  # too dense to pay: the dense kernel (a superset of the
            return None  # kept blocks, so nothing the mask keeps is lost)
    return keep


def le_layer_forward(self, hidden_states, *args, **kwargs):
    """OPTDecoderLayer / GPT2Block forward in Long Exposure mode (pre- and post-LN OPT, pre-LN
    GPT-2; HF's attention mask and cache arguments are unused)."""
    st: _LayerState = self._long_exposure
    if st.source is not None and hidden_states.shape[1] % ATTN_BLOCK:
        raise BenchlabError(f"seq_len: {hidden_states.shape[1]} is not a multiple of the "
                            f"attention block {ATTN_BLOCK}")
    p = parts(self)
    residual = hidden_states
    h = p.attn_ln(hidden_states) if p.pre_ln else hidden_states
    x = residual + _attention(p, h, _masks(st, "attn", h), st)  # (B, T, C)
    if not p.pre_ln:
        x = p.attn_ln(x)
    h = p.mlp_ln(x) if p.pre_ln else x
    if st.source is not None and not st.sparse_mlp:  # a dense GELU MLP counts as density 1.0
        n = h.shape[0] * (st.ffn // st.mlp_block)
        st.stats.add(st.index, "mlp", n, n)
        keep = None
    else:
        keep = _masks(st, "mlp", h)
    x = x + _mlp(p, h, keep, st.mlp_block)
    if not p.pre_ln:
        x = p.mlp_ln(x)
    return x


def _break_even(dense_above: dict, kind: str, h) -> float:
    """The break-even density of `kind`: a number, or a callable of the sequence length."""
    d = dense_above[kind]
    return d(h.shape[1]) if callable(d) else d


def _decoder(model):
    name = FAMILIES[family(model)].stack
    return next(m for m in model.modules() if type(m).__name__ == name)


def _docs_hook(stats: Stats, eos: int):
    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            raise BenchlabError("input_ids: the patched model needs token ids (documents are "
                                "read from the end-of-text token), not inputs_embeds")
        stats.docs = Docs(ids, eos)
    return hook


def patch(model, source=None, *, attn: str = "sparse", mlp_block: int = 64,
          dense_above: dict | None = None, eos: int | None = None,
          sparse_mlp: bool | None = None) -> Stats:
    """Put every decoder layer of an OPT or GPT-2 `model` in document-masked mode; returns the
    shared Stats. `source` None: dense, `attn` in ops_attn.DENSE_IMPLS or "flex"; else Long
    Exposure, `attn` "sparse" or "flex". `dense_above` ({"attn": a, "mlp": m}, numbers or
    callables of the length): a part whose mask keeps more runs the dense kernel. `eos`: the
    document separator. `sparse_mlp`: use the source's MLP masks (default: ReLU MLPs only;
    GELU runs dense, counted as density 1.0)."""
    allowed = SPARSE_IMPLS if source is not None else (*ops_attn.DENSE_IMPLS, "flex")
    if attn not in allowed:
        raise BenchlabError(f"attn: unknown {attn!r} for {'LE' if source else 'dense'} mode; "
                            f"choose {', '.join(allowed)}")
    if is_patched(model):
        raise BenchlabError("model: already patched; unpatch it first")
    if is_prefix(model):  # its layers would drop the prefix keys and values without a word
        raise BenchlabError("model: prefix tuning runs on Hugging Face's attention "
                            "(peft_methods.attend_in_documents), not on patched layers")
    from transformers.pytorch_utils import Conv1D

    fam = FAMILIES[family(model)]
    sparse_mlp = fam.relu if sparse_mlp is None else sparse_mlp
    stats = Stats()
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    eos = base.config.eos_token_id if eos is None else eos
    if not isinstance(eos, int):
        raise BenchlabError(f"model config: eos_token_id {eos!r} is not one token id; pass eos=")
    dec = _decoder(model)
    dec._long_exposure_hook = dec.register_forward_pre_hook(_docs_hook(stats, eos),
                                                            with_kwargs=True)
    for i, layer in enumerate(decoder_layers(model)):
        fc1 = parts(layer).fc1
        if source is not None and sparse_mlp and type(fc1) not in (torch.nn.Linear, Conv1D):
            raise BenchlabError(f"model: layer {i}: fc1 is {type(fc1).__name__}; the sparse "
                                "MLP needs a plain Linear / Conv1D fc1 (no LoRA on the MLP)")
        ffn = fc1.out_features if hasattr(fc1, "out_features") else fc1.nf
        if source is not None and ffn % mlp_block:
            raise BenchlabError(f"mlp_block: {mlp_block} does not divide ffn_dim {ffn}")
        layer._long_exposure = _LayerState(i, source, mlp_block, stats,
                                           dense_above if source is not None else None, attn,
                                           sparse_mlp, ffn)
        layer.forward = le_layer_forward.__get__(layer)
    return stats


def unpatch(model):
    """Back to the dense (Hugging Face) forward."""
    dec = _decoder(model)
    if hasattr(dec, "_long_exposure_hook"):
        dec._long_exposure_hook.remove()
        del dec._long_exposure_hook
    for layer in decoder_layers(model):
        st = getattr(layer, "_long_exposure", None)
        if st is not None:
            del layer.forward
            del layer._long_exposure
    return model


def is_patched(model) -> bool:
    return any(hasattr(layer, "_long_exposure") for layer in decoder_layers(model))
