"""Named model specs per scale, random-init builders and the hub/local-directory loader.

    python -c "from benchlab import zoo; m = zoo.build('opt-tiny'); print(m.num_parameters())"

tiny and small specs are transformers configs with the zoo BPE vocabulary (VOCAB_SIZE, token ids
below); paper specs carry the published hub id and the published shape, so `build("opt-125m")`
gives a random model of the real shape and `load("opt-125m")` the real weights.
"""

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers

from ..core.errors import BenchlabError, first_line
from ..core.registry import Registry
from .tokenize import EOT_ID, PAD_ID, VOCAB_SIZE

FAMILIES = {  # family -> (config class, causal-LM class)
    "opt": ("OPTConfig", "OPTForCausalLM"),
    "olmoe": ("OlmoeConfig", "OlmoeForCausalLM"),
    "llama": ("LlamaConfig", "LlamaForCausalLM"),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel"),
}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # "opt" | "olmoe" | "llama" | "gpt2"
    config: dict = field(default_factory=dict)  # transformers config kwargs
    hub_id: str | None = None  # paper specs: the published checkpoint
    scale: str = "tiny"  # which scale the spec is meant for: tiny | small | paper


MODELS = Registry("model")


def _add(name, family, scale, hub_id=None, **config):
    MODELS.add(name, ModelSpec(name, family, config, hub_id, scale))


def _zoo_ids(family: str) -> dict:
    """Special-token ids of the zoo tokenizer in each family's spelling."""
    if family == "gpt2":
        return dict(vocab_size=VOCAB_SIZE, bos_token_id=EOT_ID, eos_token_id=EOT_ID)
    return dict(vocab_size=VOCAB_SIZE, bos_token_id=EOT_ID, eos_token_id=EOT_ID,
                pad_token_id=PAD_ID)


# ---- tiny: seconds to build, about a minute to train on 2 CPU cores ----
_add("opt-tiny", "opt", "tiny", **_zoo_ids("opt"), hidden_size=128, ffn_dim=512,
     num_hidden_layers=4, num_attention_heads=4, word_embed_proj_dim=128,
     max_position_embeddings=2048, activation_function="relu", do_layer_norm_before=True,
     dropout=0.0, attention_dropout=0.0)
_add("olmoe-tiny", "olmoe", "tiny", **_zoo_ids("olmoe"), hidden_size=128, intermediate_size=32,
     num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4, num_experts=64,
     num_experts_per_tok=8, norm_topk_prob=False, max_position_embeddings=2048,
     router_aux_loss_coef=0.01, tie_word_embeddings=False)
_add("llama-tiny", "llama", "tiny", **_zoo_ids("llama"), hidden_size=128, intermediate_size=352,
     num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
     max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=False)
_add("gpt2-tiny", "gpt2", "tiny", **_zoo_ids("gpt2"), n_embd=128, n_layer=4, n_head=4,
     n_positions=1024, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)

# ---- small: CPU minutes or one GPU ----
_add("opt-125m-shape", "opt", "small", **_zoo_ids("opt"), hidden_size=768, ffn_dim=3072,
     num_hidden_layers=12, num_attention_heads=12, word_embed_proj_dim=768,
     max_position_embeddings=2048, activation_function="relu", do_layer_norm_before=True,
     dropout=0.0, attention_dropout=0.0)
_add("olmoe-small", "olmoe", "small", **_zoo_ids("olmoe"), hidden_size=256, intermediate_size=128,
     num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=8, num_experts=64,
     num_experts_per_tok=8, norm_topk_prob=False, max_position_embeddings=2048,
     router_aux_loss_coef=0.01, tie_word_embeddings=False)
_add("llama-small", "llama", "small", **_zoo_ids("llama"), hidden_size=512, intermediate_size=1376,
     num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=8,
     max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=False)
_add("gpt2-small-shape", "gpt2", "small", **_zoo_ids("gpt2"), n_embd=768, n_layer=12, n_head=12,
     n_positions=1024, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)

# ---- paper: the published checkpoints (shapes as in their config.json) ----
_OPT = dict(vocab_size=50272, max_position_embeddings=2048, activation_function="relu",
            pad_token_id=1, bos_token_id=2, eos_token_id=2, dropout=0.1, attention_dropout=0.0)
_add("opt-125m", "opt", "paper", "facebook/opt-125m", **_OPT, hidden_size=768, ffn_dim=3072,
     num_hidden_layers=12, num_attention_heads=12, word_embed_proj_dim=768,
     do_layer_norm_before=True)
_add("opt-350m", "opt", "paper", "facebook/opt-350m", **_OPT, hidden_size=1024, ffn_dim=4096,
     num_hidden_layers=24, num_attention_heads=16, word_embed_proj_dim=512,
     do_layer_norm_before=False)
_add("opt-1.3b", "opt", "paper", "facebook/opt-1.3b", **_OPT, hidden_size=2048, ffn_dim=8192,
     num_hidden_layers=24, num_attention_heads=32, word_embed_proj_dim=2048,
     do_layer_norm_before=True)
_add("opt-2.7b", "opt", "paper", "facebook/opt-2.7b", **_OPT, hidden_size=2560, ffn_dim=10240,
     num_hidden_layers=32, num_attention_heads=32, word_embed_proj_dim=2560,
     do_layer_norm_before=True)
_add("olmoe-1b-7b", "olmoe", "paper", "allenai/OLMoE-1B-7B-0924", vocab_size=50304,
     hidden_size=2048, intermediate_size=1024, num_hidden_layers=16, num_attention_heads=16,
     num_key_value_heads=16, num_experts=64, num_experts_per_tok=8, norm_topk_prob=False,
     max_position_embeddings=4096, rms_norm_eps=1e-5, pad_token_id=1, eos_token_id=50279,
     router_aux_loss_coef=0.01, tie_word_embeddings=False)
_add("llama2-7b", "llama", "paper", "meta-llama/Llama-2-7b-hf", vocab_size=32000,
     hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
     num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-5,
     bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
_add("gpt2", "gpt2", "paper", "gpt2", vocab_size=50257, n_embd=768, n_layer=12, n_head=12,
     n_positions=1024, bos_token_id=50256, eos_token_id=50256)


def spec(name: str) -> ModelSpec:
    """The registered spec; unknown names raise BenchlabError with "did you mean"."""
    return MODELS.get(name)


def names(scale: str | None = None) -> list[str]:
    """Registered spec names, optionally only those of one scale (tiny | small | paper)."""
    return [n for n, s in MODELS.items() if scale is None or s.scale == scale]


def hf_config(name_or_spec) -> transformers.PretrainedConfig:
    """The transformers config object of a spec."""
    s = spec(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    config_cls = getattr(transformers, FAMILIES[s.family][0])
    return config_cls(**s.config)


def model_class(family: str):
    return getattr(transformers, FAMILIES[family][1])


def build(name: str, seed: int = 0) -> transformers.PreTrainedModel:
    """Random-init model of the spec: float32, eval mode, same weights for the same seed.

    The global torch RNG is left as it was (the seed is applied in a forked RNG).
    """
    s = spec(name)
    config = hf_config(s)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(s.family)(config)
    return model.to(torch.float32).eval()


def _offline() -> bool:
    flag = os.environ.get("HF_HUB_OFFLINE", "0").strip().upper()
    return flag in {"1", "ON", "YES", "TRUE"}


def load(name_or_dir, *, dtype=None, device="cpu") -> transformers.PreTrainedModel:
    """Load a model: a local directory (save_pretrained layout), a paper spec's hub id, or a hub id.

    A tiny/small spec (no hub id) gives `trained(name)`. With HF_HUB_OFFLINE=1 (read at call time)
    nothing touches the network; a hub id missing from the local cache raises one BenchlabError
    saying what to download. HF_TOKEN is passed for gated models (Llama-2).
    """
    path = Path(os.fspath(name_or_dir)).expanduser()
    if path.is_dir():
        where, kwargs = str(path), {"local_files_only": True}
    elif isinstance(name_or_dir, str) and "/" not in name_or_dir or name_or_dir in MODELS:
        s = spec(name_or_dir)
        if s.hub_id is None:
            from .train import trained  # a tiny/small spec: the cached briefly trained model

            model = trained(s.name)
            return model.to(device=device, dtype=dtype or torch.float32)
        where, kwargs = s.hub_id, {"token": os.environ.get("HF_TOKEN") or None}
    elif path.exists():
        raise BenchlabError(f"{path}: not a model directory (expected config.json + weights)")
    else:
        where, kwargs = str(name_or_dir), {"token": os.environ.get("HF_TOKEN") or None}
    if _offline():
        kwargs["local_files_only"] = True
    from safetensors import SafetensorError

    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            where, dtype=dtype or torch.float32, **kwargs)
    except (OSError, ValueError, SafetensorError, RuntimeError) as e:  # hub errors are OSErrors;
        if isinstance(e, RuntimeError) and not Path(where).is_dir():  # corrupt local weights
            raise
        first = first_line(e)
        if Path(where).is_dir():
            raise BenchlabError(f"{where}: cannot load model ({first})") from None
        raise BenchlabError(
            f"{where}: model not available offline ({first[:160]}); download it where the hub is "
            f"reachable (`hf download {where}`, HF_TOKEN for gated models) and set HF_HOME, or "
            "pass a local directory") from None
    return model.to(device).eval()


@contextlib.contextmanager
def offline():
    """Force offline hub access inside the block (for tests and air-gapped runs)."""
    import huggingface_hub.constants as hc

    old_env, old_const = os.environ.get("HF_HUB_OFFLINE"), hc.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"], hc.HF_HUB_OFFLINE = "1", True
    try:
        yield
    finally:
        hc.HF_HUB_OFFLINE = old_const
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env
