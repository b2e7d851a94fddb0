"""Predictor-ablation loss curves: the random mask sources keep exactly the predicted masks'
block counts, drawn uniformly inside the documents (diagonal kept), random attention stays
inside documents, the neuron-reordered model is the same function, a short curve runs for every
mask kind, and no configured curve repeats another.

    pytest tests/long_exposure/test_le_curves.py -q
"""

import copy
import dataclasses
import math

import pytest
import torch

from benchlab.long_exposure import CONFIGS, predictor_cases, setups
from benchlab.long_exposure import exposer as ex
from benchlab.long_exposure import patch as P
from benchlab.long_exposure.documents import Docs, doc_ids, element_mask
from benchlab.long_exposure.masks import RandomLike

CONFIG = CONFIGS["tiny"]
MODEL = "opt-tiny"
L = CONFIG.curve_seq_len
NB = L // P.ATTN_BLOCK


def _h(B=2, seed=0):
    C = setups.base_model(MODEL).config.hidden_size
    return torch.randn(B, L, C, generator=torch.Generator().manual_seed(seed))


def _one_doc(B=2):
    return Docs(torch.full((B, L), 5), setups.base_model(MODEL).config.eos_token_id)


def _packed_docs(ends=((40, 90, 200), (130,))):
    """Docs of two packed rows whose documents end at `ends` (the end-of-text positions)."""
    eos = setups.base_model(MODEL).config.eos_token_id
    ids = torch.full((len(ends), L), 5)
    for b, row in enumerate(ends):
        ids[b, list(row)] = eos
    return Docs(ids, eos), ids, eos


def _doc_blocks(ids, eos):
    """(B, nb, nb) blocks holding a same-document causal pair, from the element mask (not
    documents.block_mask's first/last-document shortcut)."""
    em = element_mask(doc_ids(ids, eos))
    B = em.shape[0]
    return em.view(B, NB, P.ATTN_BLOCK, NB, P.ATTN_BLOCK).any(-1).any(-2)


class _Like:
    """A stub source: fixed attention and MLP masks (what RandomLike matches)."""

    def __init__(self, attn, mlp):
        self.a, self.m = attn, mlp

    def attn(self, i, h, docs):
        return self.a

    def mlp(self, i, h, docs):
        return self.m


def test_random_like_matches_counts_and_draws_uniformly_inside_documents():
    docs, ids, eos = _packed_docs()
    allowed = _doc_blocks(ids, eos)[:, None].expand(2, 3, NB, NB)
    eye = torch.eye(NB, dtype=torch.bool)
    off = allowed & ~eye
    # the stub keeps the diagonal and the k_bh earliest allowed off-diagonal blocks
    rank = off.flatten(-2).cumsum(-1).view_as(off)
    k = torch.tensor([[0, 3, 10], [1, 5, 200]])  # 200: more than the row has
    like_attn = (off & (rank <= k[..., None, None])) | eye
    like_mlp = torch.zeros(2, 8, dtype=torch.bool)
    like_mlp[0, :3] = True
    like_mlp[1, :] = True
    src = RandomLike(_Like(like_attn, like_mlp), seed=1)
    h = _h()
    n_draws = 400
    freq_a, freq_m = torch.zeros(2, 3, NB, NB), torch.zeros(2, 8)
    for _ in range(n_draws):
        a, m = src.attn(0, h, docs), src.mlp(0, h, docs)
        assert torch.equal(a.sum((-1, -2)), like_attn.sum((-1, -2)))  # equal density
        assert not (a & ~allowed).any()  # never an off-document block
        assert a.diagonal(dim1=-2, dim2=-1).all()  # every query block row keeps a block
        assert torch.equal(m.sum(-1), like_mlp.sum(-1))
        freq_a += a.float()
        freq_m += m.float()
    # uniform over the allowed off-diagonal blocks: each kept with probability k / allowed
    expect = (like_attn & ~eye).sum((-1, -2)).float() / off.sum((-1, -2)).float()
    got = freq_a / n_draws
    assert ((got - expect[..., None, None]).abs() * off).max() < 0.15
    assert (expect[0, 1:] < 1).all()  # the draws chose among more blocks than they kept
    assert (freq_m[0] / n_draws - 3 / 8).abs().max() < 0.15 and (freq_m[1] == n_draws).all()


@pytest.mark.parametrize("masks", ["random", "random_attn", "random_mlp"])
def test_random_masks_keep_the_predicted_counts(masks):
    """On the same input, every layer's random masks keep as many blocks as the predicted ones
    (per row and head; per row for the MLP), inside the documents; the other part is the
    predicted mask itself."""
    src = setups.mask_source(CONFIG, MODEL, masks, L)
    pred = setups.mask_source(CONFIG, MODEL, "predicted", L)
    docs, ids, eos = _packed_docs()
    allowed = _doc_blocks(ids, eos)[:, None]
    h = _h()
    for i in range(setups.base_model(MODEL).config.num_hidden_layers):
        a, pa = src.attn(i, h, docs), pred.attn(i, h, docs)
        m, pm = src.mlp(i, h, docs), pred.mlp(i, h, docs)
        assert torch.equal(a.sum((-1, -2)), pa.sum((-1, -2)))
        assert not (a & ~allowed).any() and a.diagonal(dim1=-2, dim2=-1).all()
        assert torch.equal(m.sum(-1), pm.sum(-1))
        if masks == "random_attn":
            assert torch.equal(m, pm)
        if masks == "random_mlp":
            assert torch.equal(a, pa)


def test_density_one_keeps_everything():
    cfg = setups.base_model(MODEL).config
    src = P.RandomMasks(cfg.num_attention_heads, cfg.ffn_dim, setups.MLP_BLOCK, 1.0, 1.0)
    h, docs = _h(), _one_doc()
    nb = L // P.ATTN_BLOCK
    assert torch.equal(src.attn(0, h, docs),
                       torch.ones(2, 4, nb, nb, dtype=torch.bool).tril().expand(2, 4, nb, nb))
    assert src.mlp(0, h, docs).all()


def test_random_attn_stays_inside_documents():
    """Document 2's logits do not depend on document 1's tokens: the random draw keeps no block
    across them (and the layer would AND one away)."""
    base = setups.base_model(MODEL)
    eos = base.config.eos_token_id
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 1000, (1, L), generator=g)
    cut = 100
    ids[0, cut - 1] = eos  # document 1: tokens 0..cut-1, document 2: cut..L-1
    other = ids.clone()
    other[0, :cut - 1] = torch.randint(3, 1000, (cut - 1,), generator=g)
    docs = Docs(ids, eos)
    raw = setups.mask_source(CONFIG, MODEL, "random_attn", L).attn(0, _h(1), docs)
    assert not (raw & ~_doc_blocks(ids, eos)[:, None]).any()

    def logits(x):
        m = copy.deepcopy(base).eval()
        src = setups.mask_source(CONFIG, MODEL, "random_attn", L)  # same seed: same draws
        P.patch(m, P.Parts(src, "attn"), attn="sparse", mlp_block=setups.MLP_BLOCK)
        with torch.no_grad():
            return m(input_ids=x).logits[0]

    a, b = logits(ids), logits(other)
    torch.testing.assert_close(a[cut:], b[cut:], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a[:cut], b[:cut])


def test_reordered_model_same_logits_sparser_mlp_blocks():
    base = setups.base_model(MODEL)
    m = setups.reordered_model(CONFIG, MODEL, L)
    data = setups.rows(MODEL, CONFIG.n_records, L, CONFIG.seed)
    ids = data[CONFIG.predictor_rows:CONFIG.predictor_rows + 4]
    with torch.no_grad():
        torch.testing.assert_close(m(input_ids=ids).logits, base(input_ids=ids).logits,
                                   atol=1e-4, rtol=1e-5)
    orders = setups.neuron_orders(CONFIG, MODEL, L)
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
            out.append(float(fire.view(*fire.shape[:2], -1, setups.MLP_BLOCK).any(-1).any(1)
                             .float().mean()))
        return out

    plain, reordered = union(base), union(m)
    assert all(r <= p + 1e-9 for r, p in zip(reordered, plain, strict=True))
    assert sum(reordered) < sum(plain)


def test_reorder_on_a_lora_model_keeps_the_function():
    t = setups.trainer(CONFIG, MODEL, "lora", L, mode="sdpa")
    ref = setups.trainer(CONFIG, MODEL, "lora", L, mode="sdpa").model.eval()  # the same LoRA init
    setups.reorder_mlp(t.model, setups.neuron_orders(CONFIG, MODEL, L))
    ids = setups.batch(CONFIG, MODEL, L)
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
    out = setups.curve(SHORT, MODEL, masks, reorder=reorder)
    assert len(out["losses"]) == 2 and all(math.isfinite(x) for x in out["losses"])
    dense = setups.curve(SHORT, MODEL, "dense")["losses"]
    if masks in ("dense", "all"):  # the dense function (reordered or not, sparse code path)
        assert out["losses"] == pytest.approx(dense, rel=1e-5)
    if masks == "dense":
        assert "density_attn" not in out
        return
    assert out["density_attn"] <= out["density_doc"]
    assert out["keeps_everything"] == (out["density_attn"] == out["density_doc"]
                                       and out["density_mlp"] == 1.0)
    if masks == "all":
        assert out["keeps_everything"]


def test_no_configured_curve_repeats_another():
    """A random part is configured only where the predicted masks of that model (as trained, or
    reordered) drop blocks of that part on the curve's batches: else it is the predicted curve
    again. Tiny: the MLP as trained keeps every block, so no random MLP there."""
    drops = {}
    for reorder in (False, True):
        out = setups.curve(SHORT, MODEL, "predicted", reorder=reorder)
        drops[reorder] = {"attn": out["density_attn"] < out["density_doc"],
                          "mlp": out["density_mlp"] < 1.0}
    assert not drops[False]["mlp"] and drops[True]["mlp"]
    cases = predictor_cases(CONFIG)
    assert len({(c.masks, c.reorder) for c in cases}) == len(cases)
    for c in cases:
        parts = {"random": ("attn", "mlp"), "random_attn": ("attn",),
                 "random_mlp": ("mlp",)}.get(c.masks, ())
        assert all(drops[c.reorder][p] for p in parts), c.id


def test_unknown_masks():
    with pytest.raises(ValueError, match="unknown"):
        setups.mask_source(CONFIG, MODEL, "nope", L)
