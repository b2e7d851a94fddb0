"""The exposer against brute force and against Hugging Face's own attention weights.

    pytest tests/long_exposure/test_le_exposer.py -q
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchlab import zoo
from benchlab.long_exposure import exposer as ex


@pytest.fixture(scope="module")
def model():
    return zoo.build("opt-tiny", seed=0)


@pytest.fixture(scope="module")
def ids():
    return torch.randint(2, zoo.VOCAB_SIZE, (2, 40), generator=torch.Generator().manual_seed(0))


def test_attention_probs_match_hf_eager(model, ids):
    """Probabilities recomputed from hooked q/k equal HF's eager attention weights."""
    model.config._attn_implementation = "eager"
    try:
        with torch.no_grad():
            out = model(input_ids=ids, output_attentions=True)
        cap = ex.run_captured(model, ids)
    finally:
        model.config._attn_implementation = "sdpa"
    for i, hf in enumerate(out.attentions):
        assert torch.allclose(ex.attention_probs(cap.q[i], cap.k[i]), hf, atol=1e-5)


def test_capture_sees_fc1_relu_and_inputs(model, ids):
    cap = ex.run_captured(model, ids)
    layer = ex.decoder_layers(model)[1]
    with torch.no_grad():
        ref = torch.relu(layer.fc1(cap.mlp_in[1]))
    assert torch.allclose(cap.act[1], ref, atol=1e-6)
    assert cap.attn_in[0].shape == (2, 40, 128) and cap.q[0].shape == (2, 4, 40, 32)
    # hooks are gone afterwards
    assert all(not lay.fc1._forward_hooks for lay in ex.decoder_layers(model))


def _keep_by_mass_brute(row, target):
    order = sorted(range(len(row)), key=lambda j: -row[j])
    keep, acc, total = set(), 0.0, sum(row)
    for j in order:
        if acc >= target * total - 1e-7 or row[j] <= 0:
            break
        keep.add(j)
        acc += row[j]
    return keep


@settings(max_examples=40, deadline=None)
@given(row=st.lists(st.floats(0, 1), min_size=1, max_size=12), target=st.floats(0.05, 1.0))
def test_keep_by_mass_is_the_fewest_largest(row, target):
    got = ex.keep_by_mass(torch.tensor(row, dtype=torch.float64), target)
    kept = set(got.nonzero().flatten().tolist())
    brute = _keep_by_mass_brute(row, target)
    assert len(kept) == len(brute)  # same size (ties may pick different members)
    assert sum(row[j] for j in kept) >= target * sum(row) - 1e-6


def test_mlp_active_blocks_brute_force():
    g = torch.Generator().manual_seed(0)
    act = torch.relu(torch.randn(2, 5, 12, generator=g))
    cfg = ex.ExposerConfig(mlp_block=4, mlp_rel=0.3, mlp_min_active=2)
    got = ex.mlp_active_blocks(act, cfg)
    a = act.numpy()
    for b in range(2):
        for t in range(5):
            top = a[b, t].max()
            for k in range(3):
                n = int(np.sum(a[b, t, 4 * k:4 * k + 4] > 0.3 * top))
                assert bool(got[b, t, k]) == (n >= 2)


def test_attention_sparsity_on_a_local_pattern():
    """A strictly local attention (each token on itself) keeps only the diagonal blocks."""
    L = 64
    A = torch.eye(L).expand(1, 2, L, L)
    valid = torch.ones(1, L, dtype=torch.bool)
    s = ex.attention_sparsity(A, ex.ExposerConfig(mass=0.9), valid)
    nb = 4
    assert s["attn_block"] == pytest.approx(nb / (nb * (nb + 1) / 2))
    assert torch.equal(s["attn_block_mask"][0, 0], torch.eye(nb, dtype=torch.bool))
    # tokens: 1 kept block each out of (t // 16 + 1)
    per_tok = 1.0 / (torch.arange(L) // 16 + 1).float()
    assert s["attn_token"] == pytest.approx(float(L / (1 / per_tok).sum()))


def test_unions_are_never_sparser(model, ids):
    e = ex.expose(model, ids, ex.ExposerConfig(mlp_block=16, mlp_rel=0.3))
    for layer in e.layers:
        assert layer.attn_token <= layer.attn_block + 1e-6
        assert layer.attn_block <= layer.attn_head_union + 1e-6
        assert layer.attn_block <= layer.attn_batch_union + 1e-6
        assert layer.mlp_token <= layer.mlp_seq_union <= layer.mlp_batch_union
        assert layer.mlp_neuron_token <= layer.mlp_neuron_seq_union <= layer.mlp_neuron_batch_union
        assert layer.mlp_neuron_token <= layer.mlp_nonzero
    m = e.metrics()
    assert set(m) == set(ex.METRICS) and all(len(v) == 4 for v in m.values())


def test_key_lengths_mask_padding(model):
    ids = torch.randint(2, zoo.VOCAB_SIZE, (2, 48), generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([48, 20])
    cap = ex.run_captured(model, ids, lengths)
    A = ex.attention_probs(cap.q[0], cap.k[0], lengths)
    assert (A[1, :, :, 20:] == 0).all()
    assert torch.allclose(A[1, :, :20].sum(-1), torch.ones(4, 20))
    e = ex.expose_captured(cap, ex.ExposerConfig(), lengths)
    assert 0 < e.layers[0].attn_block <= 1
