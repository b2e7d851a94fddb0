"""Fig 10 / Fig 12 pieces: the step breakdown adds up, and each sparse kernel equals its dense
counterpart restricted to the kept blocks (float64, partial and empty blocks).

    pytest tests/long_exposure/test_le_kernels.py -q
"""

import pytest
import torch

from benchlab.core.timing import Timer, threads
from benchlab.long_exposure import CONFIGS
from benchlab.long_exposure import kernels as K
from benchlab.long_exposure import ops_attn as A
from benchlab.long_exposure import ops_mlp as OM
from benchlab.long_exposure import patch as P
from benchlab.long_exposure.opcases import OpCase

BLK = A.BLOCK


def _attn_inputs(seed, B=2, H=2, L=37, D=8, p=0.5):
    """q, k, v float64 and a random block mask (not causal-only: any blocks, empty rows too)."""
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, L, D, generator=gen, dtype=torch.float64) for _ in range(3))
    nb = -(-L // BLK)
    mask = torch.rand(B, H, nb, nb, generator=gen) < p
    mask[0, 0, nb // 2] = False  # an empty row-block
    return q, k, v, mask


def _to_buckets(dense, layout, fill):
    """Dense (B, H, L, L) -> each bucket's (n, blk, cap * blk) entries (padded slots: fill)."""
    B, H, L, _ = dense.shape
    nb = -(-L // BLK)
    pad = nb * BLK - L
    d = torch.nn.functional.pad(dense, (0, pad, 0, pad), value=fill)
    d = d.reshape(B * H, nb, BLK, nb, BLK).permute(0, 1, 3, 2, 4)  # (BH, i, j, a, t)
    out = []
    for rows, cols in layout:
        n, cap = cols.shape
        bh, i, j = rows // nb, rows % nb, cols.clamp_min(0) % nb
        got = d[bh[:, None], i[:, None], j]  # (n, cap, blk, blk)
        got = torch.where((cols >= 0)[:, :, None, None], got, torch.full_like(got, fill))
        out.append(got.permute(0, 2, 1, 3).reshape(n, BLK, cap * BLK))
    return out


@pytest.mark.parametrize("seed,L,p", [(0, 37, 0.5), (1, 48, 0.3), (2, 5, 1.0), (3, 40, 0.0)])
@pytest.mark.parametrize("causal", [True, False])
def test_sdd_equals_dense_scores_at_kept_blocks(seed, L, p, causal):
    q, k, _, mask = _attn_inputs(seed, L=L, p=p)
    layout = A.build_layout(mask)
    scale = q.shape[-1] ** -0.5
    kept = A._element_mask(mask, L, causal, None, BLK)
    want = (q @ k.transpose(-1, -2) * scale).masked_fill(~kept, -torch.inf)
    got = K.sdd(q, k, layout, causal=causal)
    assert len(got) == len(layout) and (p > 0 or not got)
    nb = mask.shape[-1]
    for (rows, _), g, w in zip(layout, got, _to_buckets(want, layout, -torch.inf), strict=True):
        real = (rows % nb)[:, None] * BLK + torch.arange(BLK) < L  # padded query rows: cut off
        torch.testing.assert_close(g[real], w[real], atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("seed,L,p", [(0, 37, 0.5), (1, 48, 0.3), (2, 5, 1.0), (3, 40, 0.0)])
def test_dsd_equals_dense_pv_restricted_to_kept_blocks(seed, L, p):
    q, _, v, mask = _attn_inputs(seed, L=L, p=p)
    layout = A.build_layout(mask)
    kept = A._element_mask(mask, L, True, None, BLK)
    pm = torch.rand(q.shape[:2] + (L, L), dtype=torch.float64) * kept  # any kept-only "probs"
    got = K.dsd(_to_buckets(pm, layout, 0.0), v, layout)
    torch.testing.assert_close(got, pm @ v, atol=1e-12, rtol=1e-12)


def test_sdd_softmax_dsd_is_the_masked_attention():
    q, k, v, mask = _attn_inputs(4, L=45)
    layout = A.build_layout(mask)
    got = K.dsd(K.softmax_buckets(K.sdd(q, k, layout)), v, layout)
    torch.testing.assert_close(got, A.masked_dense_attention(q, k, v, mask), atol=1e-12,
                               rtol=1e-12)


@pytest.mark.parametrize("kept", ["partial", "all", "none"])
@pytest.mark.parametrize("bias", [True, False])
def test_fc1_fc2_equal_dense_at_kept_neurons(kept, bias):
    gen = torch.Generator().manual_seed(0)
    N, d, Fd, blk = 13, 8, 48, 16
    x, h = (torch.randn(N, n, generator=gen, dtype=torch.float64) for n in (d, Fd))
    w1, w2 = (torch.randn(*s, generator=gen, dtype=torch.float64) for s in ((Fd, d), (d, Fd)))
    b1, b2 = ((torch.randn(n, generator=gen, dtype=torch.float64) if bias else None)
              for n in (Fd, d))
    keep = {"partial": torch.tensor([True, False, True]), "all": torch.ones(3, dtype=bool),
            "none": torch.zeros(3, dtype=bool)}[kept]
    idx = OM.keep_to_index(keep, blk)
    masked = h * OM.neuron_mask(keep, blk).double()
    for block in (1, blk):  # neuron by neuron, and in runs of the block (what the operator runs)
        torch.testing.assert_close(K.fc1(x, w1, b1, idx, block),
                                   torch.relu(torch.nn.functional.linear(x, w1, b1))[:, idx])
        torch.testing.assert_close(K.fc2(h[:, idx], w2, b2, idx, block),
                                   torch.nn.functional.linear(masked, w2, b2))


def test_measure_kernel_records_every_kernel():
    case = OpCase("k", "kernel", 0.5, 64, 32, 256, 64, 2, 16, 1)
    with threads(1):
        m = K.measure_kernel(case, CONFIGS["tiny"], Timer())
    for k in K.KERNELS:
        assert m[f"t_{k}_sparse"] > 0 and m[f"t_{k}_dense"] > 0 and m[f"speedup_{k}"] > 0
    assert m["density_mlp"] == 0.5 and 0.5 < m["density_attn"] < 1


def _trainer_kw():
    """Random init and random masks: no trained model, no predictors to train."""
    return {"init": "random", "source": P.RandomMasks(4, 512, 64, 0.6, 0.6, seed=0)}


def test_timed_step_parts_add_up_to_the_step():
    from benchlab.long_exposure import setups

    with threads(1):
        for mode in ("sdpa", "le"):
            t = setups.trainer(CONFIGS["tiny"], "opt-tiny", "lora", 64, mode=mode, init="random",
                               source=_trainer_kw()["source"] if mode == "le" else None)
            r = t.timed_step()
            assert sum(r[p] for p in K.PARTS) == pytest.approx(r["step"], rel=1e-9)
            assert r["optimizer"] > 0 and r["backward"] > 0 and r["forward"] > 0
            assert (r["predictor"] > 0) == (mode == "le")


@pytest.mark.parametrize("method", ["full", "bitfit"])
def test_measure_breakdown(method):
    from benchlab.long_exposure import Case

    case = Case("b", "breakdown", "opt-tiny", 64, method)
    with threads(1):
        m = K.measure_breakdown(case, CONFIGS["tiny"], Timer(), **_trainer_kw())
    for mode in ("dense", "le"):
        parts = sum(m[f"{mode}_{p}"] for p in K.PARTS)
        assert parts == pytest.approx(m[f"{mode}_step"], rel=0.5)  # medians of the parts
        assert m[f"{mode}_optimizer"] > 0
    assert m["dense_predictor"] == 0 and m["le_predictor"] > 0
    assert 0 < m["predictor_share"] < 1 and m["speedup"] > 0
