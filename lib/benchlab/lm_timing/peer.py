"""The peer row: transformers' `LlamaForCausalLM` with the architecture of `TransformerLM`
(SwiGLU, RMSNorm eps 1e-5, RoPE theta 10000, no biases, untied head, full multi-head attention
through SDPA); `llama_state_dict` maps our weights onto it, so a test can compare the logits.

    python -c "from benchlab.lm_timing.peer import *; print(llama_config(SIZES['small'], 128))"
"""

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from .model import SIZES, ModelConfig, TransformerLM  # noqa: F401  (SIZES for the docstring)


def llama_config(cfg: ModelConfig, context: int | None = None):
    return LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads, hidden_act="silu",
        max_position_embeddings=context or cfg.context_length, rms_norm_eps=cfg.eps,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        attention_bias=False, mlp_bias=False, tie_word_embeddings=False, use_cache=False,
        attn_implementation="sdpa" if cfg.attn == "sdpa" else "eager",
    )


def build_llama(cfg: ModelConfig, context: int | None = None, *, device="cpu"):
    """A randomly initialised LlamaForCausalLM matching `cfg`, float32, on `device`."""
    with torch.device(device):
        return LlamaForCausalLM(llama_config(cfg, context))


def llama_state_dict(model: TransformerLM) -> dict:
    """Our weights under transformers' LLaMA names (the qkv stack split into q, k, v and w13
    into gate and up)."""
    sd = {"model.embed_tokens.weight": model.embed.weight,
          "model.norm.weight": model.norm.weight, "lm_head.weight": model.lm_head.weight}
    for i, b in enumerate(model.blocks):
        p = f"model.layers.{i}."
        q, k, v = b.attn.qkv.weight.chunk(3, dim=0)
        sd.update({
            p + "input_layernorm.weight": b.norm1.weight,
            p + "post_attention_layernorm.weight": b.norm2.weight,
            p + "self_attn.q_proj.weight": q, p + "self_attn.k_proj.weight": k,
            p + "self_attn.v_proj.weight": v, p + "self_attn.o_proj.weight": b.attn.out.weight,
            p + "mlp.gate_proj.weight": b.ffn.w1, p + "mlp.up_proj.weight": b.ffn.w3,
            p + "mlp.down_proj.weight": b.ffn.w2.weight,
        })
    return {k: v.detach().clone() for k, v in sd.items()}


def llama_logits(model, idx):
    """Logits of a LlamaForCausalLM for token ids idx (B, T) -> (B, T, V)."""
    return model(input_ids=idx).logits
