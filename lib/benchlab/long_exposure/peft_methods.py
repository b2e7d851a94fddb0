"""PEFT baselines on OPT: full fine-tuning, LoRA (q, v; r 4, alpha 32 via Hugging Face `peft`),
a bottleneck adapter (dim 64, after attention and after the MLP), BitFit (biases only) and prefix
tuning (16 virtual key/value tokens per layer via `peft`, no reparametrization).

Prefix tuning hands every layer a cache of prefix keys/values; patch.py's layers ignore it, so a
prefix model runs Hugging Face's own attention (eager or sdpa) with `attend_in_documents`: the
document mask of the packed rows plus the prefix, which every token sees.

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
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
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
    """A frozen linear layer followed by an adapter. Long Exposure's patched layer reads `base`
    for its sparse operator and applies `adapter` to the result."""

    def __init__(self, base: nn.Linear, bottleneck: int):
        super().__init__()
        self.base = base
        self.adapter = Adapter(base.out_features, bottleneck)

    def forward(self, x):
        return self.adapter(self.base(x))


def decoder_layers(model) -> list[nn.Module]:
    """The OPTDecoderLayer modules of a (possibly peft-wrapped) OPT model, in order."""
    layers = [m for m in model.modules() if type(m).__name__ == "OPTDecoderLayer"]
    if not layers:
        raise BenchlabError(f"model: {type(model).__name__}: no OPTDecoderLayer found (not OPT?)")
    return layers


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
    for layer in decoder_layers(model):
        layer.dropout = 0.0
        layer.self_attn.dropout = 0.0
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.model.decoder.dropout = 0.0
    return model


def apply_method(model, method: str, cfg: PeftConfig = PeftConfig()):
    """Make `model` trainable the way `method` says; returns the model to train (LoRA wraps it
    in a peft.PeftModel)."""
    if method not in METHODS:
        raise BenchlabError(f"method: unknown {method!r}; choose one of {', '.join(METHODS)}")
    if method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    for p in model.parameters():
        p.requires_grad_(False)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                          target_modules=list(cfg.lora_targets), bias="none",
                          task_type="CAUSAL_LM")
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
    for layer in decoder_layers(model):  # adapter: after attention out_proj and after fc2
        layer.self_attn.out_proj = AdaptedLinear(layer.self_attn.out_proj, cfg.adapter_dim)
        layer.fc2 = AdaptedLinear(layer.fc2, cfg.adapter_dim)
    return model


def expected_trainable(model_config, method: str, cfg: PeftConfig = PeftConfig(),
                       total: int | None = None) -> int:
    """Trainable parameter count a method should give, from the OPT config alone (tests compare
    it with what `apply_method` actually leaves trainable)."""
    C, F, L = model_config.hidden_size, model_config.ffn_dim, model_config.num_hidden_layers
    if method == "full":
        return total
    if method == "lora":  # A: (r, C), B: (C, r) per target per layer
        return L * len(cfg.lora_targets) * 2 * cfg.lora_r * C
    if method == "adapter":  # two adapters per layer: down (C*b + b), up (b*C + C)
        return L * 2 * (2 * C * cfg.adapter_dim + cfg.adapter_dim + C)
    if method == "bitfit":  # q,k,v,out (4C) + fc1 (F) + fc2 (C) + 2 LN (2C) per layer; final LN C
        return L * (4 * C + F + C + 2 * C) + C
    if method == "prefix":  # a key and a value vector (C) per virtual token per layer
        return cfg.prefix_tokens * L * 2 * C
    raise BenchlabError(f"method: unknown {method!r}")


def is_prefix(model) -> bool:
    """Whether `model` is a peft prefix-tuning model (its layers get prefix keys/values)."""
    cfg = getattr(model, "active_peft_config", None)
    return getattr(cfg, "peft_type", None) == "PREFIX_TUNING"


def prefix_mask(ids: torch.Tensor, eos: int, prefix: int, impl: str) -> torch.Tensor:
    """(B, 1, T, prefix + T) attention mask of packed rows `ids` (B, T): every token sees the
    `prefix` virtual tokens, then causally its own document (documents.Docs). Boolean for
    sdpa; additive float (0 / -inf-like) for eager, which adds the mask to the scores."""
    from .documents import Docs

    docs = Docs(ids, eos).mask()  # (B, 1, T, T) bool
    keep = torch.cat([docs.new_ones(*docs.shape[:3], prefix), docs], dim=-1)
    if impl == "sdpa":
        return keep
    return torch.zeros(keep.shape, device=ids.device).masked_fill(~keep, torch.finfo(
        torch.float32).min)


def attend_in_documents(model, eos: int | None = None):
    """Run a prefix-tuned OPT `model` with Hugging Face's attention kept inside the documents
    of its packed rows (prefix_mask), positions prefix..prefix+T-1 as peft gives them; its
    attention_mask argument is replaced. `eos`: the separator (default: the config's)."""
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
    """(trainable, total) parameter counts, each shared tensor counted once."""
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total
