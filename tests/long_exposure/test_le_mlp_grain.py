"""MLP grain: reordering neurons keeps the function and is judged by brute-force counts; the
column-sparse MLP (block 1) is the masked dense one, and the time study times every layer.

    pytest tests/long_exposure/test_le_mlp_grain.py -q
"""

import copy

import torch

from benchlab import zoo
from benchlab.long_exposure import exposer as ex
from benchlab.long_exposure import mlp_grain as G
from benchlab.long_exposure import ops_mlp as OM


def test_permute_mlp_keeps_the_function():
    model = zoo.build("opt-tiny", seed=0).eval()
    ids = torch.randint(2, zoo.VOCAB_SIZE, (2, 48), generator=torch.Generator().manual_seed(0))
    other = copy.deepcopy(model)
    g = torch.Generator().manual_seed(1)
    for layer in ex.decoder_layers(other):
        G.permute_mlp(layer, torch.randperm(layer.fc1.out_features, generator=g))
    with torch.no_grad():
        torch.testing.assert_close(other(ids).logits, model(ids).logits, atol=1e-5, rtol=1e-4)
    first = [ex.decoder_layers(m)[0].fc1.weight for m in (other, model)]
    assert not torch.equal(*first)


def test_order_and_seq_union_brute_force():
    g = torch.Generator().manual_seed(0)
    act = torch.relu(torch.randn(3, 5, 8, generator=g))
    act[..., 2] = 0  # a neuron that never fires
    rel = 0.3
    top = act.amax(-1, keepdim=True)
    fire = (act > rel * top) & (act > 0)
    counts = [int(fire[b, :, j].any()) for j in range(8) for b in range(3)]
    per = [sum(counts[j * 3:(j + 1) * 3]) for j in range(8)]
    order = G.neuron_order(act, rel).tolist()
    assert order == sorted(range(8), key=lambda j: (-per[j], j))
    for block in (1, 2, 4):
        kept = [[fire[b][:, order][:, i:i + block].any().item() for i in range(0, 8, block)]
                for b in range(3)]
        want = sum(map(sum, kept)) / (3 * 8 // block)
        assert abs(G.seq_union(act, rel, block, torch.tensor(order)) - want) < 1e-6


def test_column_sparse_is_the_masked_dense_mlp_on_the_neuron_union():
    """Block 1 on the per-sequence neuron union: forward and input gradient equal the dense MLP
    with the neurons no token of the sequence fired zeroed (ops_mlp.masked_dense_mlp), and the
    mask is the union of the brute-force per-token activity."""
    g = torch.Generator().manual_seed(0)
    B, L, d, F = 2, 6, 8, 24
    x = torch.randn(B, L, d, generator=g, requires_grad=True)
    w1, b1 = torch.randn(F, d, generator=g), torch.randn(F, generator=g)
    w2, b2 = torch.randn(d, F, generator=g), torch.randn(d, generator=g)
    act = torch.relu(torch.randn(B, L, F, generator=g) - 0.8)
    rel = 0.1
    keep = G.seq_keep(act, rel, 1)
    fire = (act > rel * act.amax(-1, keepdim=True)) & (act > 0)
    assert torch.equal(keep, fire.any(1)) and 0 < keep.float().mean() < 1
    gy = torch.randn(B, L, d, generator=g)
    got = OM.block_sparse_mlp(x, w1, b1, w2, b2, keep, 1)
    (gx,) = torch.autograd.grad(got, x, gy)
    want = OM.masked_dense_mlp(x, w1, b1, w2, b2, keep, 1)
    (wx,) = torch.autograd.grad(want, x, gy)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gx, wx, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(want, OM.dense_mlp(x, w1, b1, w2, b2), atol=1e-3)  # mask bites


def test_time_study_gives_one_time_per_layer():
    model = zoo.build("opt-tiny", seed=0).eval()
    g = torch.Generator().manual_seed(0)
    calib, held = (torch.randint(2, zoo.VOCAB_SIZE, (2, 32), generator=g) for _ in range(2))
    out = G.grain_study(model, calib, held, rels=(0.0, 0.05), blocks=(1, 64),
                        time_blocks=(64,), rounds=3, warmup=0)
    n = len(ex.decoder_layers(model))
    names = ["dense", "column_t0", "column_t5", "block_t0_b64", "block_t5_b64_reordered"]
    for k in names:
        v = out[f"t_mlp_{k}"]
        assert len(v) == n and all(t > 0 for t in v), k
        assert abs(out[f"t_mlp_{k}_mean"] - sum(v) / n) < 1e-12
    assert len(out["speedup_column_t5"]) == n and out["speedup_block_t5_b64_mean"] > 0
    assert "t_mlp_block_t0_b128" not in out and "mlp_seq_union_t5_b64_reordered" in out
    for k in names[1:]:  # each layer's speedup inside its bootstrap bounds
        lo, s, hi = (out[f"speedup_{k}{x}"] for x in ("_lo", "", "_hi"))
        assert all(a <= b <= c for a, b, c in zip(lo, s, hi, strict=True)), k
