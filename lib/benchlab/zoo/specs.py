"""Named model specs per scale: data, not code.

    python -c "from benchlab import zoo; print(zoo.names('tiny'), zoo.spec('opt-tiny').config)"

tiny and small specs are transformers configs with the zoo BPE's vocabulary and ids; paper specs
carry the published hub id and shape. This file is outside every code version (NOT_CODE in
core.provenance): a record depends on its own spec through its inputs (`spec:<name>`,
zoo.models.artifact_inputs), so editing a spec reruns only that model's cases.
"""

from dataclasses import dataclass, field

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


# what each family's tiny and small specs share: the zoo BPE's special ids, no dropout
_ZOO = dict(vocab_size=VOCAB_SIZE, bos_token_id=EOT_ID, eos_token_id=EOT_ID)
_ZOO_OPT = dict(_ZOO, pad_token_id=PAD_ID, max_position_embeddings=2048,
                activation_function="relu", do_layer_norm_before=True, dropout=0.0,
                attention_dropout=0.0)
_ZOO_OLMOE = dict(_ZOO, pad_token_id=PAD_ID, num_experts=64, num_experts_per_tok=8,
                  norm_topk_prob=False, max_position_embeddings=2048, router_aux_loss_coef=0.01,
                  tie_word_embeddings=False)
_ZOO_LLAMA = dict(_ZOO, pad_token_id=PAD_ID, max_position_embeddings=2048, rms_norm_eps=1e-5,
                  tie_word_embeddings=False)
_ZOO_GPT2 = dict(_ZOO, n_positions=1024, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)

# ---- tiny: seconds to build, about a minute to train on 2 CPU cores ----
_add("opt-tiny", "opt", "tiny", **_ZOO_OPT, hidden_size=128, ffn_dim=512, num_hidden_layers=4,
     num_attention_heads=4, word_embed_proj_dim=128)
_add("olmoe-tiny", "olmoe", "tiny", **_ZOO_OLMOE, hidden_size=128, intermediate_size=32,
     num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4)
_add("llama-tiny", "llama", "tiny", **_ZOO_LLAMA, hidden_size=128, intermediate_size=352,
     num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4)
_add("gpt2-tiny", "gpt2", "tiny", **_ZOO_GPT2, n_embd=128, n_layer=4, n_head=4)

# ---- small: CPU minutes or one GPU ----
_add("opt-125m-shape", "opt", "small", **_ZOO_OPT, hidden_size=768, ffn_dim=3072,
     num_hidden_layers=12, num_attention_heads=12, word_embed_proj_dim=768)
_add("olmoe-small", "olmoe", "small", **_ZOO_OLMOE, hidden_size=256, intermediate_size=128,
     num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=8)
_add("llama-small", "llama", "small", **_ZOO_LLAMA, hidden_size=512, intermediate_size=1376,
     num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=8)
_add("gpt2-small-shape", "gpt2", "small", **_ZOO_GPT2, n_embd=768, n_layer=12, n_head=12)

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
_GPT2 = dict(vocab_size=50257, n_positions=1024, bos_token_id=50256, eos_token_id=50256)
_add("gpt2", "gpt2", "paper", "gpt2", **_GPT2, n_embd=768, n_layer=12, n_head=12)
_add("gpt2-large", "gpt2", "paper", "openai-community/gpt2-large", **_GPT2, n_embd=1280,
     n_layer=36, n_head=20)
_add("gpt2-xl", "gpt2", "paper", "openai-community/gpt2-xl", **_GPT2, n_embd=1600, n_layer=48,
     n_head=25)
