"""PEFT baselines on OPT and GPT-2: full fine-tuning, LoRA (r 4, alpha 32 via Hugging Face
`peft`; OPT q_proj, v_proj; GPT-2 c_attn, peft's own default for GPT-2, a Conv1D so
fan_in_fan_out), a bottleneck adapter (dim 64, after attention and after the MLP), BitFit
(biases only) and prefix tuning (OPT only: 16 virtual key/value tokens per layer via `peft`, no
reparametrization).

`parts(layer)` names one layer's attention / MLP modules alike for every family (FAMILIES).
patch.py's layers ignore prefix keys/values, so a prefix model runs Hugging Face's attention
with `attend_in_documents`: the packed rows' document mask plus the prefix.

    python -c "from benchlab import zoo; from benchlab.long_exposure.peft_methods import *; \
m = apply_method(zoo.build('opt-tiny'), 'lora'); print(param_counts(m))"
"""

from dataclasses import dataclass

import torch
from torch import nn

from benchlab.core.errors import BenchlabError

METHODS = ("full", "lora", "adapter", "bitfit", "prefix")
ATTN_IMPLS = ("sdpa", "eager")


@dataclass(frozen=True)
class PeftConfig:
    lora_r: int = 4
    lora_alpha: int = 32
    lora_targets: tuple[str, ...] | None = None  # None: the family's (Family.lora)
    adapter_dim: int = 64
    prefix_tokens: int = 16


class Adapter(nn.Module):
    """Houlsby bottleneck: y + up(relu(down(y))); `up` starts at zero so training starts at the
    pretrained function."""

    def __init__(self, dim: int, bottleneck: int):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)  # (C -> b)
        self.up = nn.Linear(bottleneck, dim)  # (b -> C)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, y):  # y: (..., C)
        return y + self.up(torch.relu(self.down(y)))


class AdaptedLinear(nn.Module):
    """A frozen linear layer followed by an adapter (patch.py runs `base` sparse)."""

    def __init__(self, base: nn.Module, bottleneck: int):  # nn.Linear or a GPT-2 Conv1D (nf)
        super().__init__()
        self.base = base
        self.adapter = Adapter(getattr(base, "out_features", None) or base.nf, bottleneck).to(
            base.weight.device, base.weight.dtype)

    def forward(self, x):
        return self.adapter(self.base(x))


@dataclass(frozen=True)
class Family:
    layer: str  # decoder layer class name
    stack: str  # the module whose forward gets input_ids (the decoder)
    lora: tuple[str, ...]  # default LoRA targets
    relu: bool  # ReLU MLP (exact zeros: the block-sparse MLP is exact where the mask is true)


FAMILIES = {"opt": Family("OPTDecoderLayer", "OPTDecoder", ("q_proj", "v_proj"), True),
            "gpt2": Family("GPT2Block", "GPT2Model", ("c_attn",), False)}


@dataclass
class LayerParts:
    """One decoder layer's pieces: `qkv(h)` -> (q, k, v) each (B, T, C), q scaled; MLP
    fc2(act(fc1(h))); `conv` when fc1 / fc2 are Conv1D (weight (in, out))."""
    heads: int
    qkv: object
    out: nn.Module
    attn_ln: nn.Module
    mlp_ln: nn.Module
    fc1: nn.Module
    fc2: nn.Module
    act: object
    conv: bool
    pre_ln: bool


def family(model) -> str:
    """The family key of a (possibly peft-wrapped) model: "opt" or "gpt2"."""
    names = {type(m).__name__ for m in model.modules()}
    for key, fam in FAMILIES.items():
        if fam.layer in names:
            return key
    raise BenchlabError(f"model: {type(model).__name__}: no OPT or GPT-2 decoder layers found")


def decoder_layers(model) -> list[nn.Module]:
    """The decoder layers (OPTDecoderLayer or GPT2Block) of a (possibly peft-wrapped) model."""
    name = FAMILIES[family(model)].layer
    return [m for m in model.modules() if type(m).__name__ == name]


def parts(layer) -> LayerParts:
    """The LayerParts of one OPT or GPT-2 decoder layer."""
    if type(layer).__name__ == "GPT2Block":
        a, m = layer.attn, layer.mlp

        def qkv(h):
            q, k, v = a.c_attn(h).split(a.split_size, dim=2)
            return q * a.scaling, k, v
        return LayerParts(a.num_heads, qkv, a.c_proj, layer.ln_1, layer.ln_2, m.c_fc, m.c_proj,
                          m.act, True, True)
    a = layer.self_attn
    return LayerParts(a.num_heads,
                      lambda h: (a.q_proj(h) * a.scaling, a.k_proj(h), a.v_proj(h)),
                      a.out_proj, layer.self_attn_layer_norm, layer.final_layer_norm, layer.fc1,
                      layer.fc2, layer.activation_fn, False, layer.do_layer_norm_before)


def set_attention(model, impl: str):
    """Switch the dense baseline between eager attention and torch SDPA."""
    if impl not in ATTN_IMPLS:
        raise BenchlabError(f"attn_implementation: unknown {impl!r}; choose "
                            f"{', '.join(ATTN_IMPLS)}")
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.set_attn_implementation(impl)
    return model


def disable_dropout(model):
    """Zero every dropout so dense and Long Exposure runs see the same function (loss curves)."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        elif type(m).__name__ in ("OPTDecoderLayer", "OPTAttention", "OPTDecoder"):
            m.dropout = 0.0  # OPT keeps these as floats for F.dropout
    return model


def apply_method(model, method: str, cfg: PeftConfig = PeftConfig()):
    """Make `model` trainable the way `method` says; returns the model to train (maybe wrapped)."""
    if method not in METHODS:
        raise BenchlabError(f"method: unknown {method!r}; choose one of {', '.join(METHODS)}")
    if method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    fam = family(model)
    if method == "prefix" and fam != "opt":
        raise BenchlabError(f"method: prefix tuning runs on OPT only, not {fam}")
    for p in model.parameters():
        p.requires_grad_(False)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                          target_modules=list(cfg.lora_targets or FAMILIES[fam].lora),
                          bias="none", task_type="CAUSAL_LM", fan_in_fan_out=fam == "gpt2")
        return get_peft_model(model, lcfg)
    if method == "bitfit":
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.requires_grad_(True)
        return model
    if method == "prefix":
        from peft import PrefixTuningConfig, get_peft_model

        pcfg = PrefixTuningConfig(num_virtual_tokens=cfg.prefix_tokens, prefix_projection=False,
                                  task_type="CAUSAL_LM")
        return get_peft_model(model, pcfg)
    for layer in decoder_layers(model):  # adapter: after the attention output and after fc2
        owner = (layer.attn, layer.mlp) if fam == "gpt2" else (layer.self_attn, layer)
        out, fc2 = ("c_proj", "c_proj") if fam == "gpt2" else ("out_proj", "fc2")
        setattr(owner[0], out, AdaptedLinear(getattr(owner[0], out), cfg.adapter_dim))
        setattr(owner[1], fc2, AdaptedLinear(getattr(owner[1], fc2), cfg.adapter_dim))
    return model


def expected_trainable(model_config, method: str, cfg: PeftConfig = PeftConfig(),
                       total: int | None = None) -> int:
    """Trainable parameter count a method should give, from the OPT or GPT-2 config alone (tests
    compare it with what `apply_method` actually leaves trainable)."""
    gpt2 = model_config.model_type == "gpt2"
    C, L = model_config.hidden_size, model_config.num_hidden_layers
    F = (model_config.n_inner or 4 * C) if gpt2 else model_config.ffn_dim
    if method == "full":
        return total
    if method == "lora":  # A: (r, C), B: (out, r) per target per layer; GPT-2's c_attn out 3C
        targets = cfg.lora_targets or FAMILIES["gpt2" if gpt2 else "opt"].lora
        return L * len(targets) * cfg.lora_r * (C + (3 * C if gpt2 else C))
    if method == "adapter":  # two adapters per layer: down (C*b + b), up (b*C + C)
        return L * 2 * (2 * C * cfg.adapter_dim + cfg.adapter_dim + C)
    if method == "bitfit":  # q,k,v,out (4C) + fc1 (F) + fc2 (C) + 2 LN (2C) per layer; final LN C
        # (GPT-2: c_attn 3C + c_proj C, the same count)
        return L * (4 * C + F + C + 2 * C) + C
    if method == "prefix":  # a key and a value vector (C) per virtual token per layer
        return cfg.prefix_tokens * L * 2 * C
    raise BenchlabError(f"method: unknown {method!r}")


def is_prefix(model) -> bool:
    """Whether `model` is a peft prefix-tuning model (its layers get prefix keys/values)."""
    cfg = getattr(model, "active_peft_config", None)
    return getattr(cfg, "peft_type", None) == "PREFIX_TUNING"


def prefix_mask(ids: torch.Tensor, eos: int, prefix: int, impl: str) -> torch.Tensor:
    """(B, 1, T, prefix + T) mask of packed rows `ids` (B, T): the `prefix` virtual tokens,
    then causally the token's own document; bool for sdpa, additive float for eager."""
    from .documents import Docs

    docs = Docs(ids, eos).mask()  # (B, 1, T, T) bool
    keep = torch.cat([docs.new_ones(*docs.shape[:3], prefix), docs], dim=-1)
    if impl == "sdpa":
        return keep
    return torch.zeros(keep.shape, device=ids.device).masked_fill(~keep, torch.finfo(
        torch.float32).min)


def attend_in_documents(model, eos: int | None = None):
    """Keep a prefix-tuned OPT's attention inside its packed rows' documents (prefix_mask,
    replacing attention_mask; positions prefix..prefix+T-1 as peft gives them)."""
    if not is_prefix(model):
        raise BenchlabError("model: attend_in_documents is for peft prefix-tuning models")
    base = model.get_base_model()
    eos = base.config.eos_token_id if eos is None else eos
    decoder = base.model.decoder
    if hasattr(decoder, "_prefix_docs_hook"):
        raise BenchlabError("model: attend_in_documents already applied")

    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            raise BenchlabError("input_ids: the document mask needs token ids, not inputs_embeds")
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        prefix = cache.get_seq_length() if cache is not None else 0
        impl = base.config._attn_implementation
        if impl not in ATTN_IMPLS:
            raise BenchlabError(f"attn_implementation: {impl!r}; prefix tuning runs "
                                f"{', '.join(ATTN_IMPLS)}")
        kwargs["attention_mask"] = prefix_mask(ids, eos, prefix, impl)
        T = ids.shape[1]
        kwargs["position_ids"] = torch.arange(prefix, prefix + T, device=ids.device).expand_as(ids)
        return args, kwargs

    decoder._prefix_docs_hook = decoder.register_forward_pre_hook(hook, with_kwargs=True)
    return model


def param_counts(model) -> tuple[int, int]:
    """(trainable, total) parameter counts (parameters() yields a shared tensor once)."""
    ps = list(model.parameters())
    return sum(p.numel() for p in ps if p.requires_grad), sum(p.numel() for p in ps)
