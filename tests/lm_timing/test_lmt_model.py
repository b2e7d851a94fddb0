"""TransformerLM numerics against straightforward reference code and against transformers' LLaMA.

    pytest tests/lm_timing/test_lmt_model.py -q
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from benchlab.lm_timing.model import (
    SIZES,
    ModelConfig,
    RMSNorm,
    SwiGLU,
    TransformerLM,
    apply_rope,
    einsum_attention,
    lm_loss,
    num_params,
    rope_tables,
    sdpa_attention,
    step_flops,
)
from benchlab.lm_timing.peer import build_llama, llama_logits, llama_state_dict

SMALL = ModelConfig(32, 64, 2, 4, vocab_size=50, context_length=16)


def test_rmsnorm_matches_formula():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 32) * 3
    norm = RMSNorm(32, 1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(32) + 0.5)
    ref = torch.empty_like(x)
    for i in range(3):  # per vector: x / sqrt(mean(x^2) + eps) * g
        for j in range(5):
            v = x[i, j].double()
            ref[i, j] = (v / math.sqrt((v * v).mean().item() + 1e-5) * norm.weight.double()).float()
    torch.testing.assert_close(norm(x), ref, rtol=1e-5, atol=1e-5)


def test_swiglu_matches_formula():
    torch.manual_seed(0)
    ffn = SwiGLU(16, 24)
    x = torch.randn(2, 3, 16)
    w1, w2, w3 = ffn.w1, ffn.w2.weight, ffn.w3
    a, b = x @ w1.T, x @ w3.T
    ref = ((a * (1 / (1 + torch.exp(-a)))) * b) @ w2.T  # w2(silu(w1 x) * w3 x)
    torch.testing.assert_close(ffn(x), ref, rtol=1e-5, atol=1e-6)


def test_rope_matches_complex_rotation():
    torch.manual_seed(0)
    B, h, T, hd, theta = 2, 3, 7, 8, 10_000.0
    x = torch.randn(B, h, T, hd, dtype=torch.float64)
    cos, sin = rope_tables(hd, T, theta)
    out = apply_rope(x, cos.double(), sin.double())
    half = hd // 2
    z = torch.complex(x[..., :half], x[..., half:])  # pair (i, i + hd/2) as a complex number
    ref = torch.empty_like(x)
    for t in range(T):
        for i in range(half):
            angle = t * theta ** (-2 * i / hd)
            w = z[:, :, t, i] * complex(math.cos(angle), math.sin(angle))
            ref[:, :, t, i], ref[:, :, t, i + half] = w.real, w.imag
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)


def test_rope_preserves_relative_position_dot_products():
    torch.manual_seed(1)
    hd = 16
    cos, sin = rope_tables(hd, 32, 10_000.0)
    q, k = torch.randn(hd, dtype=torch.float64), torch.randn(hd, dtype=torch.float64)

    def rot(v, t):
        return apply_rope(v.view(1, 1, 1, hd), cos[t:t + 1].double(), sin[t:t + 1].double())

    d1 = (rot(q, 5) * rot(k, 2)).sum()
    d2 = (rot(q, 13) * rot(k, 10)).sum()  # same offset 3
    torch.testing.assert_close(d1, d2)


def loop_attention(q, k, v):
    """Causal attention one query at a time with an explicit softmax."""
    B, h, T, hd = q.shape
    out = torch.zeros_like(q)
    for t in range(T):
        s = (q[:, :, t:t + 1] @ k[:, :, :t + 1].transpose(-1, -2)) / math.sqrt(hd)
        p = torch.exp(s - s.max(-1, keepdim=True).values)
        out[:, :, t] = ((p / p.sum(-1, keepdim=True)) @ v[:, :, :t + 1])[:, :, 0]
    return out


@pytest.mark.parametrize("impl", [sdpa_attention, einsum_attention])
def test_attention_matches_loop_reference(impl):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 9, 8, dtype=torch.float64) for _ in range(3))
    torch.testing.assert_close(impl(q, k, v), loop_attention(q, k, v), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_sdpa_and_einsum_agree(dtype, tol):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 64, 16).to(dtype) for _ in range(3))
    diff = (sdpa_attention(q, k, v).float() - einsum_attention(q, k, v).float()).abs().max()
    assert diff < tol


def test_model_is_causal():
    torch.manual_seed(0)
    model = TransformerLM(SMALL).eval()
    idx = torch.randint(0, 50, (1, 12))
    changed = idx.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % 50
    with torch.no_grad():
        a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :8], b[:, :8])
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_sdpa_and_einsum_models_agree():
    torch.manual_seed(0)
    ours = TransformerLM(SMALL)
    other = TransformerLM(ModelConfig(**{**SMALL.__dict__, "attn": "einsum"}))
    other.load_state_dict(ours.state_dict())
    idx = torch.randint(0, 50, (2, 16))
    torch.testing.assert_close(ours(idx), other(idx), rtol=1e-5, atol=1e-5)


def test_same_logits_as_transformers_llama():
    torch.manual_seed(0)
    ours = TransformerLM(SMALL).eval()
    llama = build_llama(SMALL).eval()
    missing, unexpected = llama.load_state_dict(llama_state_dict(ours), strict=False)
    assert not unexpected and all("rotary" in k for k in missing)
    idx = torch.randint(0, 50, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), llama_logits(llama, idx), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size", list(SIZES))
def test_param_count_formula_matches_modules(size):
    cfg = SIZES[size]
    with torch.device("meta"):  # no memory for the 2.7B model
        ours = TransformerLM(cfg)
        peer = build_llama(cfg, device="meta")
    assert num_params(cfg) == sum(p.numel() for p in ours.parameters())
    assert num_params(cfg) == sum(p.numel() for p in peer.parameters())


def test_small_has_the_assignment_param_count():
    assert num_params(SIZES["small"]) == 128_625_408


@pytest.mark.parametrize("mode", ["forward", "forward_backward"])
def test_flop_formula_matches_torch_flop_counter(mode):
    cfg = ModelConfig(32, 64, 2, 4, vocab_size=50, attn="einsum")  # einsum: plain bmm flops
    model = TransformerLM(cfg)
    idx = torch.randint(0, 50, (3, 16))
    with FlopCounterMode(display=False) as counter:
        loss = lm_loss(model(idx), idx)
        if mode == "forward_backward":
            loss.backward()
    assert counter.get_total_flops() == step_flops(cfg, 3, 16, mode)


def test_loss_is_cross_entropy_of_next_tokens():
    logits = torch.randn(2, 5, 7)
    y = torch.randint(0, 7, (2, 5))
    ref = -F.log_softmax(logits, -1).gather(-1, y[..., None]).mean()
    torch.testing.assert_close(lm_loss(logits, y), ref)
