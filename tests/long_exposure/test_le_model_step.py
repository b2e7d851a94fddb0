"""The model-step workload: cases per scale, exposer masks as a fixed source, trainers.

    pytest tests/long_exposure/test_le_model_step.py -q
"""

import pytest
import torch

from benchlab import zoo
from benchlab.long_exposure import CONFIGS, model_step_cases
from benchlab.long_exposure import patch as P
from benchlab.long_exposure import workload as wl
from benchlab.long_exposure.documents import Docs


def test_model_step_cases_per_scale():
    assert model_step_cases(CONFIGS["tiny"]) == []
    cases = model_step_cases(CONFIGS["small"])
    assert [c.masks for c in cases] == ["exposed", "synthetic"]
    assert all(c.model == "opt-125m-shape" and c.seq_len == 1024 for c in cases)
    assert cases[0].init == "trained" and "trained" in cases[0].id  # said in the record id
    assert cases[1].density == 0.25 and "synthetic0.25" in cases[1].id


def test_exposed_source_masks_and_fixed_patch_equals_masked_run():
    """Exposer masks have the operator shapes; a Fixed source of all-kept masks equals dense."""
    torch.set_num_threads(1)
    m = zoo.build("opt-tiny").eval()
    ids = torch.randint(2, 4096, (1, 64), generator=torch.Generator().manual_seed(0))
    src = wl.exposed_source(m, ids, mass=0.9, mlp_rel=0.05)
    h = torch.zeros(1, 64, 128)
    docs = Docs(ids, 0)
    assert src.attn(0, h, docs).shape == (1, 4, 4, 4) and src.attn(0, h, docs).dtype == torch.bool
    assert src.mlp(0, h, docs).shape == (1, 512 // wl.MLP_BLOCK)
    assert src.attn(0, h, docs).diagonal(dim1=-2, dim2=-1).all()  # own block has mass
    with torch.no_grad():
        dense = m(ids).logits
        keep = P.KeepAll(4, 512, wl.MLP_BLOCK)
        n = len(src.attn_masks)
        P.patch(m, P.Fixed([keep.attn(0, h, docs)] * n, [keep.mlp(0, h, docs)] * n))
        assert torch.allclose(m(ids).logits, dense, atol=1e-4)


def test_dense_above_runs_parts_dense_only_above_the_break_even():
    """patch(dense_above=...): a part whose mask keeps more than the threshold runs the dense
    kernel (equal to the unpatched model); below it the block-sparse operator runs (a sparse
    mask then changes the output)."""
    torch.set_num_threads(1)
    m = zoo.build("opt-tiny").eval()
    ids = torch.randint(2, 4096, (1, 64), generator=torch.Generator().manual_seed(0))
    n = m.config.num_hidden_layers
    with torch.no_grad():
        dense = m(ids).logits
        half = P.RandomMasks(4, 512, wl.MLP_BLOCK, 0.5, 0.5, seed=0)
        stats = P.patch(m, half, dense_above={"attn": 0.4, "mlp": 0.4})
        assert torch.allclose(m(ids).logits, dense, atol=1e-4)
        assert stats.dense_runs == 2 * n and 0.4 < stats.density("mlp") <= 0.6
        P.unpatch(m)
        stats = P.patch(m, half, dense_above={"attn": 0.9, "mlp": 0.9})
        assert not torch.allclose(m(ids).logits, dense, atol=1e-3)
        assert stats.dense_runs == 0


def test_break_even_crossing_interpolates_and_feeds_the_dispatcher():
    from benchlab.long_exposure import breakeven as be

    assert be.crossing({0.1: 3.0, 0.3: 1.5, 0.5: 0.5}) == pytest.approx(0.3 + 0.5 * 0.2)
    assert be.crossing({0.1: 0.9, 0.5: 0.5}) == 0.0 and be.crossing({0.1: 3, 0.9: 1.1}) == 1.0
    a, curve = be.attention(1, 2, 64, 8, grid=(0.3, 1.0), rounds=1)
    assert set(curve) == {0.3, 1.0} and 0.0 <= a <= 1.0
    # a callable break-even (of the length) is read per call
    m = zoo.build("opt-tiny").eval()
    ids = torch.randint(2, 4096, (1, 64), generator=torch.Generator().manual_seed(0))
    half = P.RandomMasks(4, 512, wl.MLP_BLOCK, 0.5, 0.5, seed=0)
    seen = []
    stats = P.patch(m, half, dense_above={"attn": lambda n: seen.append(n) or 0.0, "mlp": 1.0})
    with torch.no_grad():
        m(ids)
    assert seen == [64] * m.config.num_hidden_layers and stats.dense_runs == len(seen)
