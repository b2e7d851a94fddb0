"""LoRA for a nanoGPT-style GPT-2: rank-r updates on the q and v slices of the fused c_attn,
optionally on the lm_head; the base model is frozen.

    python -c "from benchlab import zoo; from benchlab.sublora.lora import add_lora; \
m = zoo.build('gpt2-tiny'); print(add_lora(m, rank=4, alpha=32))"

GPT-2's c_attn is a Conv1D: y = x @ W + b with W of shape (C, 3C), so the q, k, v slices are
columns [0, C), [C, 2C), [2C, 3C). LoRA adds scaling * x A^T B^T to the q and v slices, with
A (r, C) Kaiming-uniform and B (C, r) zero, so the wrapped model equals the base at start.
"""

import math

import torch
import torch.nn as nn


def _kaiming(rows: int, cols: int, generator: torch.Generator) -> torch.Tensor:
    # nn.init.kaiming_uniform_(a=sqrt(5)) as in peft/loralib: bound = 1/sqrt(fan_in)
    bound = 1.0 / math.sqrt(cols)
    return (torch.rand(rows, cols, generator=generator) * 2 - 1) * bound


class LoRAQV(nn.Module):
    """c_attn with LoRA on q and v. Input x (B, T, C) -> (B, T, 3C)."""

    def __init__(self, base: nn.Module, rank: int, alpha: float, generator: torch.Generator,
                 dropout: float = 0.0):
        super().__init__()
        self.base, self.dropout = base, nn.Dropout(dropout)
        C = base.weight.shape[0]
        self.n_embd, self.scaling = C, alpha / rank
        self.lora_A_q = nn.Parameter(_kaiming(rank, C, generator))  # (r, C)
        self.lora_B_q = nn.Parameter(torch.zeros(C, rank))          # (C, r)
        self.lora_A_v = nn.Parameter(_kaiming(rank, C, generator))
        self.lora_B_v = nn.Parameter(torch.zeros(C, rank))

    def forward(self, x):
        y = self.base(x)                                        # (B, T, 3C)
        q, k, v = y.split(self.n_embd, dim=-1)
        x = self.dropout(x)
        dq = (x @ self.lora_A_q.t()) @ self.lora_B_q.t()        # (B, T, r) -> (B, T, C)
        dv = (x @ self.lora_A_v.t()) @ self.lora_B_v.t()
        return torch.cat([q + self.scaling * dq, k, v + self.scaling * dv], dim=-1)


class LoRALinear(nn.Module):
    """nn.Linear (the lm_head, weight (V, C)) plus scaling * x A^T B^T."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, generator: torch.Generator,
                 dropout: float = 0.0):
        super().__init__()
        self.base, self.dropout = base, nn.Dropout(dropout)
        V, C = base.weight.shape
        self.scaling = alpha / rank
        self.lora_A = nn.Parameter(_kaiming(rank, C, generator))  # (r, C)
        self.lora_B = nn.Parameter(torch.zeros(V, rank))          # (V, r)

    def forward(self, x):
        return self.base(x) + self.scaling * ((self.dropout(x) @ self.lora_A.t()) @ self.lora_B.t())


def add_lora(model: nn.Module, *, rank: int = 4, alpha: float = 32.0, lm_head: bool = False,
             seed: int = 0, dropout: float = 0.0) -> list[str]:
    """Wrap every block's attn.c_attn (and the lm_head) in place, freeze all else; the names of
    the LoRA parameters in model order. A's init comes from `seed`: part of the prior."""
    for p in model.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    for block in model.transformer.h:
        block.attn.c_attn = LoRAQV(block.attn.c_attn, rank, alpha, gen, dropout)
    if lm_head:
        model.lm_head = LoRALinear(model.lm_head, rank, alpha, gen, dropout)
    return [n for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
