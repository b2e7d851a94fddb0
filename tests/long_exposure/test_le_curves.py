"""Predictor-ablation loss curves: the random_attn / random_mlp mask sources keep the densities
asked, random attention stays inside documents, the neuron-reordered model is the same function,
and a short curve runs for every mask kind.

    pytest tests/long_exposure/test_le_curves.py -q
"""

import copy
import dataclasses
import math

import pytest
import torch

from benchlab.long_exposure import CONFIGS
from benchlab.long_exposure import exposer as ex
from benchlab.long_exposure import patch as P
from benchlab.long_exposure import workload as wl
from benchlab.long_exposure.documents import Docs

CONFIG = CONFIGS["tiny"]
MODEL = "opt-tiny"
L = CONFIG.curve_seq_len
ATTN = [0.3, 0.5, 0.7, 0.9]  # one density per layer of opt-tiny
MLP = [0.25, 0.5, 0.75, 1.0]


def _h(B=2, seed=0):
    C = wl.base_model(MODEL).config.hidden_size
    return torch.randn(B, L, C, generator=torch.Generator().manual_seed(seed))


def _one_doc(B=2):
    return Docs(torch.full((B, L), 5), wl.base_model(MODEL).config.eos_token_id)


def test_random_attn_keeps_the_attention_density_asked_and_the_predicted_mlp():
    src = wl.mask_source(CONFIG, MODEL, "random_attn", L, (ATTN, MLP))
    pred = wl.predictors(CONFIG, MODEL, L)
    h, docs = _h(), _one_doc()
    nb = L // P.ATTN_BLOCK
    causal = nb * (nb + 1) // 2
    for i, d in enumerate(ATTN):
        keep = src.attn(i, h, docs)
        assert keep.shape == (2, 4, nb, nb)
        assert not keep.triu(1).any()
        assert keep.diagonal(dim1=-2, dim2=-1).all()
        kept = keep.sum((-1, -2)).float()  # per (row, head), against the causal blocks
        assert (kept - d * causal).abs().max() <= 1
        assert torch.equal(src.mlp(i, h, docs), pred.mlp(i, h, docs))


def test_random_mlp_keeps_the_mlp_density_asked_and_the_predicted_attention():
    src = wl.mask_source(CONFIG, MODEL, "random_mlp", L, (ATTN, MLP))
    pred = wl.predictors(CONFIG, MODEL, L)
    h, docs = _h(), _one_doc()
    n = wl.base_model(MODEL).config.ffn_dim // wl.MLP_BLOCK
    for i, d in enumerate(MLP):
        keep = src.mlp(i, h, docs)
        assert keep.shape == (2, n)
        assert keep.sum(-1).tolist() == [round(d * n)] * 2
        assert torch.equal(src.attn(i, h, docs), pred.attn(i, h, docs))


def test_density_one_keeps_everything():
    cfg = wl.base_model(MODEL).config
    src = P.RandomMasks(cfg.num_attention_heads, cfg.ffn_dim, wl.MLP_BLOCK, 1.0, 1.0)
    h, docs = _h(), _one_doc()
    nb = L // P.ATTN_BLOCK
    assert torch.equal(src.attn(0, h, docs),
                       torch.ones(2, 4, nb, nb, dtype=torch.bool).tril().expand(2, 4, nb, nb))
    assert src.mlp(0, h, docs).all()


def test_random_attn_stays_inside_documents():
    """Document 2's logits do not depend on document 1's tokens, though the random draw keeps
    blocks across them (the layer ANDs them away) and drops blocks inside them."""
    base = wl.base_model(MODEL)
    eos = base.config.eos_token_id
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 1000, (1, L), generator=g)
    cut = 100
    ids[0, cut - 1] = eos  # document 1: tokens 0..cut-1, document 2: cut..L-1
    other = ids.clone()
    other[0, :cut - 1] = torch.randint(3, 1000, (cut - 1,), generator=g)
    docs = Docs(ids, eos)
    dens = ([0.9] * 4, [1.0] * 4)
    raw = wl.mask_source(CONFIG, MODEL, "random_attn", L, dens).attn(0, _h(1), docs)
    assert (raw & ~docs.blocks(P.ATTN_BLOCK)[:, None]).any()  # the draw crosses documents
    assert (~raw & docs.blocks(P.ATTN_BLOCK)[:, None]).any()  # and drops document blocks

    def logits(x):
        m = copy.deepcopy(base).eval()
        src = wl.mask_source(CONFIG, MODEL, "random_attn", L, dens)  # same seed: same draws
        P.patch(m, P.Parts(src, "attn"), attn="sparse", mlp_block=wl.MLP_BLOCK)
        with torch.no_grad():
            return m(input_ids=x).logits[0]

    a, b = logits(ids), logits(other)
    torch.testing.assert_close(a[cut:], b[cut:], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a[:cut], b[:cut])
    dense = copy.deepcopy(base).eval()
    P.patch(dense, None, attn="sdpa")
    with torch.no_grad():
        ref = dense(input_ids=ids).logits[0]
    assert (a[cut:] - ref[cut:]).abs().max() > 1e-3  # the dropped blocks change the function


def test_reordered_model_same_logits_sparser_mlp_blocks():
    base = wl.base_model(MODEL)
    m = wl.reordered_model(CONFIG, MODEL, L)
    data = wl.rows(MODEL, CONFIG.n_records, L, CONFIG.seed)
    ids = data[CONFIG.predictor_rows:CONFIG.predictor_rows + 4]
    with torch.no_grad():
        torch.testing.assert_close(m(input_ids=ids).logits, base(input_ids=ids).logits,
                                   atol=1e-4, rtol=1e-5)
    orders = wl.neuron_orders(CONFIG, MODEL, L)
    assert any(not torch.equal(o, torch.arange(o.numel())) for o in orders)
    for o in orders:
        assert torch.equal(o.sort().values, torch.arange(o.numel()))
    # per-sequence union of active 64-neuron blocks, counted on each model's own activations
    rel = CONFIG.ops.mlp_rel

    def union(model):
        cap = ex.run_captured(model, ids)
        out = []
        for i in sorted(cap.act):
            a = cap.act[i].float()
            fire = (a > rel * a.amax(-1, keepdim=True)) & (a > 0)
            out.append(float(fire.view(*fire.shape[:2], -1, wl.MLP_BLOCK).any(-1).any(1)
                             .float().mean()))
        return out

    plain, reordered = union(base), union(m)
    assert all(r <= p + 1e-9 for r, p in zip(reordered, plain, strict=True))
    assert sum(reordered) < sum(plain)


def test_reorder_on_a_lora_model_keeps_the_function():
    t = wl.trainer(CONFIG, MODEL, "lora", L, mode="sdpa")
    ref = wl.trainer(CONFIG, MODEL, "lora", L, mode="sdpa").model.eval()  # the same LoRA init
    wl.reorder_mlp(t.model, wl.neuron_orders(CONFIG, MODEL, L))
    ids = wl.batch(CONFIG, MODEL, L)
    with torch.no_grad():
        torch.testing.assert_close(t.model.eval()(input_ids=ids).logits,
                                   ref(input_ids=ids).logits, atol=1e-4, rtol=1e-5)


SHORT = dataclasses.replace(CONFIG, curve_steps=2)


@pytest.mark.parametrize("masks,reorder", [("dense", False), ("predicted", False),
                                           ("random", False), ("random_attn", False),
                                           ("random_mlp", False), ("all", False),
                                           ("dense", True), ("predicted", True),
                                           ("random_mlp", True)])
def test_short_curve_runs_for_every_mask_kind(masks, reorder):
    dens = (ATTN, MLP) if masks.startswith("random") else None
    out = wl.curve(SHORT, MODEL, masks, dens, reorder=reorder)
    assert len(out["losses"]) == 2 and all(math.isfinite(x) for x in out["losses"])
    dense = wl.curve(SHORT, MODEL, "dense")["losses"]
    if masks in ("dense", "all"):  # the dense function (reordered or not, sparse code path)
        assert out["losses"] == pytest.approx(dense, rel=1e-5)
    if masks == "dense":
        return
    n = wl.base_model(MODEL).config.ffn_dim // wl.MLP_BLOCK
    if masks in ("random", "random_mlp"):  # exact count per row
        assert out["layer_density_mlp"] == [round(d * n) / n for d in MLP]
    if masks in ("random", "random_attn"):  # random blocks AND-ed with the documents
        assert all(a <= d + 1 / 136 for a, d in zip(out["layer_density_attn"], ATTN,
                                                     strict=True))
        assert out["density_attn"] <= out["density_doc"]
    if masks == "all":
        assert out["density_attn"] == out["density_doc"] and out["density_mlp"] == 1.0


def test_unknown_masks_and_missing_densities():
    with pytest.raises(ValueError, match="unknown"):
        wl.mask_source(CONFIG, MODEL, "nope", L)
    with pytest.raises(ValueError, match="densities"):
        wl.mask_source(CONFIG, MODEL, "random_attn", L)
