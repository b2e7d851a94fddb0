"""Block-sparse operators equal the masked dense computation, forward and backward.

    pytest tests/long_exposure/test_le_ops.py -q
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchlab.long_exposure import ops_attn as A
from benchlab.long_exposure import ops_mlp as M

FAST = settings(max_examples=25, deadline=None)


def _grads(out, inputs, g):
    return torch.autograd.grad(out, inputs, g, allow_unused=True)


def _close(a, b, tol=1e-10):
    if a is None or b is None:
        assert a is None and b is None
        return
    assert torch.allclose(a, b, atol=tol, rtol=tol), (a - b).abs().max()


@FAST
@given(seed=st.integers(0, 2**31 - 1), B=st.integers(1, 2), H=st.integers(1, 3),
       L=st.integers(1, 70), D=st.sampled_from([4, 8]), p=st.floats(0.0, 1.0),
       causal=st.booleans(), lengths=st.booleans())
def test_block_sparse_attention_equals_masked_dense(seed, B, H, L, D, p, causal, lengths):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, L, D, generator=gen, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    nb = math.ceil(L / 16)
    mask = torch.rand(B, H, nb, nb, generator=gen) < p  # any mask, empty rows included
    kl = torch.randint(1, L + 1, (B,), generator=gen) if lengths else None
    scale = 0.3
    out = A.block_sparse_attention(q, k, v, mask, causal=causal, key_lengths=kl, scale=scale)
    ref = A.masked_dense_attention(q, k, v, mask, causal=causal, key_lengths=kl, scale=scale)
    _close(out, ref)
    g = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    for a, b in zip(_grads(out, (q, k, v), g), _grads(ref, (q, k, v), g), strict=True):
        _close(a, b)


def test_attention_all_blocks_equals_sdpa_float32():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 96, 32, requires_grad=True) for _ in range(3))
    # key_lengths (all full) forces the block-sparse kernel; without it a full mask uses SDPA
    out = A.block_sparse_attention(q, k, v, A.causal_block_mask(2, 4, 96),
                                   key_lengths=torch.full((2,), 96))
    ref = A.sdpa_attention(q, k, v)
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(A.eager_attention(q, k, v), ref, atol=1e-5)
    g = torch.randn_like(out)
    for a, b in zip(_grads(out, (q, k, v), g), _grads(ref, (q, k, v), g), strict=True):
        assert torch.allclose(a, b, atol=1e-4)


def test_attention_dropped_block_changes_output():
    """The mask is honoured: dropping an off-diagonal block changes rows of that row-block only."""
    torch.manual_seed(1)
    q, k, v = (torch.randn(1, 1, 64, 8) for _ in range(3))
    full = A.causal_block_mask(1, 1, 64)
    cut = full.clone()
    cut[0, 0, 3, 1] = False
    a = A.block_sparse_attention(q, k, v, full)
    b = A.block_sparse_attention(q, k, v, cut)
    assert not torch.allclose(a[..., 48:, :], b[..., 48:, :])
    assert torch.allclose(a[..., :48, :], b[..., :48, :], atol=1e-6)  # a: all kept -> SDPA


def test_random_block_mask_density_and_diagonal():
    m = A.random_block_mask(2, 3, 256, 0.75, generator=torch.Generator().manual_seed(0))
    nb = 16
    assert m.diagonal(dim1=-2, dim2=-1).all()
    assert not (m & ~torch.ones(nb, nb, dtype=torch.bool).tril()).any()
    n_off = nb * (nb - 1) // 2
    assert ((m.sum((-1, -2)) - nb) == round(0.25 * n_off)).all()
    assert A.block_density(A.causal_block_mask(1, 1, 256)) == 1.0


def test_layout_buckets_cover_rows_once():
    m = torch.rand(2, 3, 20, 20) < 0.4
    layout = A.build_layout(m)
    rows = torch.cat([r for r, _ in layout])
    nonempty = m.reshape(-1, 20).any(-1).nonzero().flatten()
    assert torch.equal(rows.sort().values, nonempty)
    for r, cols in layout:  # every kept block appears exactly once, in its own (b, h)
        flat = m.reshape(-1, 20)
        for row, c in zip(r.tolist(), cols.tolist(), strict=True):
            kept = [x - (row // 20) * 20 for x in c if x >= 0]
            assert kept == flat[row].nonzero().flatten().tolist()


@FAST
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 40), d=st.sampled_from([8, 24]),
       nblk=st.integers(1, 8), block=st.sampled_from([1, 4, 16]), p=st.floats(0.0, 1.0),
       per_seq=st.booleans(), bias=st.booleans(),
       trainable=st.sampled_from(["none", "bias", "all"]))
def test_block_sparse_mlp_equals_masked_dense(seed, n, d, nblk, block, p, per_seq, bias,
                                              trainable):
    gen = torch.Generator().manual_seed(seed)
    F = nblk * block
    dt = torch.float64
    x = torch.randn(2, n, d, generator=gen, dtype=dt, requires_grad=True)
    w1 = torch.randn(F, d, generator=gen, dtype=dt, requires_grad=trainable == "all")
    w2 = torch.randn(d, F, generator=gen, dtype=dt, requires_grad=trainable == "all")
    b1 = torch.randn(F, generator=gen, dtype=dt) if bias else None
    b2 = torch.randn(d, generator=gen, dtype=dt) if bias else None
    if bias and trainable != "none":
        b1.requires_grad_(True)
        b2.requires_grad_(True)
    keep = torch.rand((2, nblk) if per_seq else (nblk,), generator=gen) < p
    out = M.block_sparse_mlp(x, w1, b1, w2, b2, keep, block)
    ref = M.masked_dense_mlp(x, w1, b1, w2, b2, keep, block)
    _close(out, ref)
    inputs = [t for t in (x, w1, b1, w2, b2) if t is not None and t.requires_grad]
    g = torch.randn(out.shape, generator=gen, dtype=dt)
    for a, b in zip(_grads(out, inputs, g), _grads(ref, inputs, g), strict=True):
        _close(a, b if b is not None else torch.zeros_like(a))


def test_mlp_frozen_weights_get_no_grad_and_dropped_rows_zero():
    torch.manual_seed(0)
    x = torch.randn(10, 8, requires_grad=True)
    w1 = torch.randn(32, 8, requires_grad=True)
    w2 = torch.randn(8, 32)  # frozen
    keep = torch.tensor([True, False, True, False])
    M.block_sparse_mlp(x, w1, None, w2, None, keep, 8).sum().backward()
    assert w2.grad is None and x.grad is not None
    assert (w1.grad[8:16] == 0).all() and (w1.grad[24:] == 0).all()
    assert w1.grad[:8].abs().sum() > 0


def test_mlp_keep_all_equals_dense_float32():
    torch.manual_seed(0)
    x = torch.randn(3, 17, 64, requires_grad=True)
    w1, b1, w2, b2 = torch.randn(256, 64), torch.randn(256), torch.randn(64, 256), torch.randn(64)
    out = M.block_sparse_mlp(x, w1, b1, w2, b2, torch.ones(4, dtype=torch.bool), 64)
    assert torch.allclose(out, M.dense_mlp(x, w1, b1, w2, b2), atol=1e-4)


def test_random_keep_counts():
    keep = M.random_keep(40, 0.75, generator=torch.Generator().manual_seed(0), batch=3)
    assert keep.shape == (3, 40) and (keep.sum(-1) == 10).all()
    assert M.keep_to_index(torch.tensor([False, True, True]), 2).tolist() == [2, 3, 4, 5]


def test_mlp_per_sequence_mask_needs_batch_dim():
    with pytest.raises(ValueError, match="per-sequence"):
        M.block_sparse_mlp(torch.randn(5, 4), torch.randn(8, 4), None, torch.randn(4, 8), None,
                           torch.ones(2, 2, dtype=torch.bool), 4)


def _saved(fn, *args) -> dict:
    """Bytes of the tensors autograd saves for backward while `fn(*args)` runs, by kind."""
    out = {"float": 0, "int": 0}

    def pack(t):
        out["float" if t.is_floating_point() else "int"] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args)
    return out


def test_attention_full_heads_beside_sparse_heads_equal_masked_dense():
    """Heads keeping every causal block (and blocks above the diagonal, ignored when causal)
    beside sparse heads: the kernel equals the masked dense reference, forward and backward."""
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 3, 80, 8, generator=gen, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    m = A.random_block_mask(2, 3, 80, 0.5, generator=gen)
    m[0, 1] = True  # full (blocks above the diagonal are ignored when causal)
    m[1, 2] = A.causal_block_mask(1, 1, 80)[0, 0]
    out = A.block_sparse_attention(q, k, v, m, scale=0.3)
    ref = A.masked_dense_attention(q, k, v, m, scale=0.3)
    _close(out, ref)
    g = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    for a, b in zip(_grads(out, (q, k, v), g), _grads(ref, (q, k, v), g), strict=True):
        _close(a, b)


@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.9])
def test_attention_saves_no_gathered_copies(sparsity):
    """Backward recomputes the gathered K/V and probabilities: the operator saves q, k, v, out
    and one log-sum-exp per row (what fused SDPA saves) plus the integer layout, never the
    gathered K/V (each alone would be >= k's bytes at these densities)."""
    B, H, L, D = 1, 2, 256, 32
    q, k, v = (torch.randn(B, H, L, D, requires_grad=True) for _ in range(3))
    mask = A.random_block_mask(B, H, L, sparsity, generator=torch.Generator().manual_seed(0))
    le = _saved(lambda a, b, c: A.block_sparse_attention(a, b, c, mask), q, k, v)
    sdpa = _saved(A.sdpa_attention, q, k, v)
    qkv = 4 * q.numel() * q.element_size()  # q, k, v, out
    assert le["float"] <= qkv + B * H * L * 4  # + the log-sum-exp rows: no K/V copy, no probs
    assert le["float"] <= sdpa["float"] + sdpa["int"]
    assert le["int"] < 0.1 * qkv  # the index layout is small


def test_mlp_saves_no_weight_copies_and_no_input_when_frozen():
    """The backward gathers the kept weights again: only x (if fc1 trains), the kept ReLU
    outputs and the index are saved besides the weights themselves."""
    torch.manual_seed(0)
    x = torch.randn(32, 16, requires_grad=True)
    w1, w2 = torch.randn(64, 16), torch.randn(16, 64)
    keep = torch.tensor([True, False, True, False])
    idx_bytes = 32 * 8
    frozen = _saved(lambda a: M.block_sparse_mlp(a, w1, None, w2, None, keep, 16), x)
    assert frozen["float"] == (64 + 64) * 16 * 4 + 32 * 32 * 4  # w1, w2, relu(h) (32, 32)
    assert frozen["int"] == idx_bytes
    w1.requires_grad_(True)
    trained = _saved(lambda a: M.block_sparse_mlp(a, w1, None, w2, None, keep, 16), x)
    assert trained["float"] == frozen["float"] + x.numel() * 4
