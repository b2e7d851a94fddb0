"""A nanoGPT-style Transformer language model with the CS336 assignment 2 sizes.

Pre-norm blocks: x + attn(RMSNorm(x)), then + SwiGLU(RMSNorm(.)); RMSNorm eps 1e-5; SwiGLU
w2(silu(w1 x) * w3 x); RoPE theta 10000 (the rotate-half layout LLaMA and transformers use, so
weights map one-to-one onto `LlamaForCausalLM`); causal multi-head attention through
`F.scaled_dot_product_attention` or a plain einsum path; no biases; final RMSNorm; untied head.

    python -c "from benchlab.lm_timing.model import *; m = TransformerLM(SIZES['tiny']); print(m)"
"""

import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class ModelConfig:
    d_model: int
    d_ff: int
    num_layers: int
    num_heads: int
    vocab_size: int = 10_000
    context_length: int = 1024  # longest sequence the RoPE tables cover
    rope_theta: float = 10_000.0
    eps: float = 1e-5
    attn: str = "sdpa"  # "sdpa" or "einsum"

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads


# (d_model, d_ff, layers, heads); "tiny" is ours, for CI; the rest are the assignment's table.
SIZES = {
    "tiny": ModelConfig(128, 512, 2, 4),
    "small": ModelConfig(768, 3072, 12, 12),
    "medium": ModelConfig(1024, 4096, 24, 16),
    "large": ModelConfig(1280, 5120, 36, 20),
    "xl": ModelConfig(1600, 6400, 48, 25),
    "2.7B": ModelConfig(2560, 10240, 32, 32),
}


DIMS = ("d_model", "d_ff", "num_layers", "num_heads")  # a size's dimensions, as the seed's flags


def canonical_size(size: str) -> str:
    """The seed's sweep spells 2.7B as 2_7B; both name the same size."""
    return "2.7B" if size in ("2_7B", "2_7b", "2.7b") else size


def size_config(size: str, **overrides) -> ModelConfig:
    from benchlab.core.errors import BenchlabError

    if size not in SIZES:
        raise BenchlabError(f"model size: unknown size {size!r}; choose one of {', '.join(SIZES)}")
    return replace(SIZES[size], **overrides)


def num_params(cfg: ModelConfig) -> int:
    """Analytic parameter count: embedding + head (untied) + per-layer attention, SwiGLU and two
    norms + the final norm."""
    d, f, V, L = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.num_layers
    return 2 * V * d + L * (4 * d * d + 3 * d * f + 2 * d) + d


def forward_flops(cfg: ModelConfig, batch: int, context: int) -> int:
    """Matmul FLOPs of one forward pass (2 per multiply-add): the linear layers and the head,
    plus attention scores QK^T and the weighted sum AV counted over the full T x T square (no
    credit for causal masking, the convention of PaLM's MFU)."""
    d, f, V, L = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.num_layers
    tokens = batch * context
    linear = 2 * tokens * (L * (4 * d * d + 3 * d * f) + d * V)
    attention = L * 2 * (2 * batch * context * context * d)
    return linear + attention


def step_flops(cfg: ModelConfig, batch: int, context: int, mode: str) -> int:
    """Model FLOPs of one step: forward, or forward + backward (backward = 2x forward). The
    AdamW update (~10 FLOPs per parameter) is left out: it is < 0.1% at batch 4 x 128."""
    fwd = forward_flops(cfg, batch, context)
    return fwd if mode == "forward" else 3 * fwd


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):  # (..., d) -> (..., d), statistics in float32 like LLaMA
        y = F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps)
        return self.weight * y.to(x.dtype)


def rope_tables(head_dim: int, context: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (context, head_dim): angle t * theta^(-2i/head_dim), both halves."""
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(context, dtype=torch.float64), inv_freq)  # (T, hd/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, hd)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x, cos, sin):
    """Rotate pairs (x_i, x_{i+hd/2}) by their angles. x: (B, h, T, hd); cos, sin: (T, hd)."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


def einsum_attention(q, k, v):
    """Causal softmax(q k^T / sqrt(hd)) v the long way. q, k, v: (B, h, T, hd)."""
    T = q.shape[-2]
    scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.shape[-1])  # (B, h, T, T)
    future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
    scores = scores.masked_fill(future, float("-inf"))
    probs = torch.softmax(scores.to(torch.promote_types(scores.dtype, torch.float32)), dim=-1)
    probs = probs.to(v.dtype)  # softmax in at least float32
    return torch.einsum("bhqk,bhkd->bhqd", probs, v)


def sdpa_attention(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


ATTENTION = {"sdpa": sdpa_attention, "einsum": einsum_attention}


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)  # q, k, v stacked
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.attend = ATTENTION[cfg.attn]

    def forward(self, x, cos, sin):  # x: (B, T, d)
        B, T, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)  # each (B, T, d)
        q, k, v = (t.view(B, T, self.num_heads, -1).transpose(1, 2) for t in (q, k, v))
        q, k = apply_rope(q, cos[:T], sin[:T]), apply_rope(k, cos[:T], sin[:T])  # (B, h, T, hd)
        y = self.attend(q, k, v)  # (B, h, T, hd)
        return self.out(y.transpose(1, 2).reshape(B, T, d))


class SwiGLU(nn.Module):
    """w2(silu(w1 x) * w3 x), with w1 (gate) and w3 (up) stacked in one (2 d_ff, d) matrix like
    the attention's qkv: one matmul instead of two forward, and in backward one for the input
    gradient (no sum of two) and one for the weight gradient."""

    def __init__(self, d: int, d_ff: int):
        super().__init__()
        self.w13 = nn.Linear(d, 2 * d_ff, bias=False)  # [w1; w3] stacked
        self.w2 = nn.Linear(d_ff, d, bias=False)  # down

    @property
    def w1(self) -> torch.Tensor:  # (d_ff, d) gate weight, a view into w13
        return self.w13.weight[: self.w2.in_features]

    @property
    def w3(self) -> torch.Tensor:  # (d_ff, d) up weight, a view into w13
        return self.w13.weight[self.w2.in_features:]

    def forward(self, x):  # (B, T, d) -> (B, T, d)
        gate, up = self.w13(x).chunk(2, dim=-1)  # each (B, T, d_ff)
        return self.w2(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1 = RMSNorm(cfg.d_model, cfg.eps)
        self.attn = CausalSelfAttention(cfg)
        self.norm2 = RMSNorm(cfg.d_model, cfg.eps)
        self.ffn = SwiGLU(cfg.d_model, cfg.d_ff)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.norm1(x), cos, sin)
        return x + self.ffn(self.norm2(x))


class TransformerLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.d_model % cfg.num_heads or cfg.head_dim % 2:
            raise ValueError(f"d_model {cfg.d_model} must split into {cfg.num_heads} even heads")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        cos, sin = rope_tables(cfg.head_dim, cfg.context_length, cfg.rope_theta)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for name, p in self.named_parameters():  # nanoGPT init; norms stay at one
            if p.dim() == 2:
                residual = name.endswith(("out.weight", "w2.weight"))  # scaled by depth
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.num_layers) if residual
                                else 0.02)

    def forward(self, idx):  # idx: (B, T) int64 -> logits (B, T, V)
        if idx.shape[1] > self.cfg.context_length:
            raise ValueError(f"sequence {idx.shape[1]} > context_length {self.cfg.context_length}")
        x = self.embed(idx)  # (B, T, d)
        for block in self.blocks:
            x = block(x, self.cos, self.sin)
        return self.lm_head(self.norm(x))


def lm_loss(logits, targets):
    """Mean next-token cross entropy; logits (B, T, V), targets (B, T)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
