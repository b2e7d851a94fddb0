"""Routing inside a transformers OLMoE model: equivalence, dispatch cost, calibration.

    /work/venv/bin/pytest tests/moe_routing/test_moe_model.py -q
"""

import pytest
import torch
from transformers import OlmoeConfig, OlmoeForCausalLM

from benchlab.moe_routing import ROUTINGS, Routing, apply_routing, calibrate, collect_stats
from benchlab.moe_routing import model as model_mod
from benchlab.moe_routing.model import RoutedRouter, grouped_experts


def small_olmoe(seed=0, layers=2):
    cfg = OlmoeConfig(vocab_size=128, hidden_size=32, intermediate_size=16,
                      num_hidden_layers=layers, num_attention_heads=2, num_experts=16,
                      num_experts_per_tok=4, norm_topk_prob=False, pad_token_id=1,
                      eos_token_id=0, bos_token_id=0)
    torch.manual_seed(seed)
    model = OlmoeForCausalLM(cfg).eval()
    with torch.no_grad():  # a router with some spread, as after training
        for layer in model.model.layers:
            layer.mlp.gate.weight.normal_(0, 0.5)
    return model


@pytest.fixture(scope="module")
def ids():
    return torch.randint(2, 128, (2, 24), generator=torch.Generator().manual_seed(0))


def test_topk_routing_reproduces_the_transformers_model(ids):
    model = small_olmoe()
    with torch.no_grad():
        want = model(input_ids=ids).logits
        apply_routing(model, Routing("topk_4", "topk", k=4))
        got = model(input_ids=ids).logits
    assert isinstance(model.model.layers[0].mlp.gate, RoutedRouter)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_grouped_experts_matches_eager_experts_with_sentinel_padding():
    model = small_olmoe()
    experts = model.model.layers[0].mlp.experts  # transformers' OlmoeExperts (eager path)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 32, generator=g)
    index = torch.randint(0, 16, (30, 4), generator=g)
    index[::3, 1:] = 16  # sentinel = empty slot
    w = torch.rand(30, 4, generator=g)
    experts.config._experts_implementation = "eager"
    with torch.no_grad():
        want = experts(x, index, w)
        got = grouped_experts(experts, x, index, w)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_unselected_experts_are_not_computed(ids, monkeypatch):
    """Rows through the expert matmuls = selected (token, expert) pairs, so fewer experts cost
    proportionally fewer FLOPs."""
    model = small_olmoe()
    rows, groups = [], []
    real = model_mod.expert_matmul

    def counting(x, w, counts):
        if tuple(w.shape) == (16, 16, 32):  # the experts' down_proj^T [E, I, H]
            rows.append(x.shape[0])
            groups.append(int((counts > 0).sum()))
        assert int(counts.sum()) == x.shape[0]  # every row belongs to one expert's group
        return real(x, w, counts)

    monkeypatch.setattr(model_mod, "expert_matmul", counting)
    for k in (1, 2, 4):
        rows.clear()
        apply_routing(model, Routing(f"topk_{k}", "topk", k=k))
        with torch.no_grad(), collect_stats(model) as st:
            model(input_ids=ids)
        assert sum(rows) == ids.numel() * k * 2  # tokens x k x layers
        assert st.per_token().mean() == k


def test_bh_configs_select_variable_counts_and_record_router_logits(ids):
    model = small_olmoe()
    calib = torch.randint(2, 128, (40, 64), generator=torch.Generator().manual_seed(2))
    null = calibrate(model, calib)
    assert null.sorted.shape == (2, 16, 40 * 64)
    means = {}
    for name in ("bh_strict", "bh_moderate", "bh_loose"):
        apply_routing(model, name, null)
        with torch.no_grad(), collect_stats(model) as st:
            out = model(input_ids=ids, output_router_logits=True)
        counts = st.per_token()
        r = ROUTINGS.get(name)
        assert counts.min() >= r.min_k and counts.max() <= r.max_k
        means[name] = float(counts.mean())
        assert len(out.router_logits) == 2  # transformers' hooks still see the router
    assert means["bh_strict"] <= means["bh_moderate"] <= means["bh_loose"]


def test_routing_can_be_switched_after_the_first_forward(ids):
    model = small_olmoe()
    apply_routing(model, Routing("topk_4", "topk", k=4))
    with torch.no_grad():
        a = model(input_ids=ids).logits
        apply_routing(model, Routing("topk_1", "topk", k=1))
        b = model(input_ids=ids).logits
        apply_routing(model, Routing("topk_4", "topk", k=4))
        c = model(input_ids=ids).logits
    assert not torch.allclose(a, b) and torch.equal(a, c)


def test_dispatch_paths_agree_grouped_mm_and_loop(monkeypatch):
    """expert_matmul's grouped path equals its per-expert loop (also with empty experts), and the
    mask dispatch of the block equals the sentinel-slot grouped_experts."""
    g = torch.Generator().manual_seed(7)
    w = torch.randn(8, 12, 5, generator=g)
    counts = torch.tensor([3, 0, 5, 1, 0, 0, 7, 2])
    x = torch.randn(int(counts.sum()), 12, generator=g)
    want = torch.cat([x[s - c:s] @ w[e] for e, (c, s) in
                      enumerate(zip(counts.tolist(), counts.cumsum(0).tolist(), strict=True)) if c])
    torch.testing.assert_close(model_mod.expert_matmul(x, w, counts), want, atol=1e-6, rtol=1e-6)
    monkeypatch.delattr(torch, "_grouped_mm", raising=False)
    torch.testing.assert_close(model_mod.expert_matmul(x, w, counts), want, atol=1e-6, rtol=1e-6)
    monkeypatch.undo()
    model = small_olmoe()
    apply_routing(model, Routing("topk_3", "topk", k=3))
    block = model.model.layers[0].mlp
    h = torch.randn(2, 10, 32, generator=g)
    with torch.no_grad():
        _, mask, weights = block.gate(h.view(-1, 32))
        top = torch.topk(torch.where(mask, weights, -1.0), 4, dim=-1)  # 3 real + 1 sentinel slot
        index = torch.where(top.values >= 0, top.indices, 16)
        ref = grouped_experts(block.experts, h.view(-1, 32), index, top.values.clamp(min=0))
        torch.testing.assert_close(block(h).view(-1, 32), ref, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", ["bh_moderate", "bh_pooled", "bh_adaptive"])
def test_null_is_calibrated_under_the_routing_tested(name):
    """Layer l's null = the layer-l logits of the calibration tokens with layers < l routed by
    the rule itself (each with its own null): checked layer by layer against separate forwards
    that route the layers below with nulls built the same way (make_null on their logits)."""
    from benchlab.moe_routing import make_null
    from benchlab.moe_routing.model import moe_blocks

    model = small_olmoe(layers=3)
    r = ROUTINGS.get(name)
    calib = torch.randint(2, 128, (8, 64), generator=torch.Generator().manual_seed(3))
    null = calibrate(model, calib, r.null, temperature=r.temperature, under=r)
    top8 = calibrate(model, calib, r.null, temperature=r.temperature, under="topk_8")
    assert null.meta["routing"]["name"] == name and top8.meta["routing"]["name"] == "topk_8"
    assert torch.equal(null.sorted[0], top8.sorted[0])  # layer 0 sees no routing
    assert not torch.equal(null.sorted[2], top8.sorted[2])  # later layers do
    layers = []
    for lay in range(3):
        for i, block in enumerate(moe_blocks(model)):
            block.gate.set_routing(r if i < lay else ROUTINGS.get("topk_8"), None)
            block.gate.null = layers[i] if i < lay else None
        with torch.no_grad(), collect_stats(model, keep_logits=True) as st:
            model(input_ids=calib)
        x = torch.cat(st.logits[lay])
        layers.append(make_null(r.null, x[None], r.temperature).layer(0))
        assert torch.equal(null.sorted[lay], layers[-1].sorted), lay
