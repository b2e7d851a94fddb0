"""Projectors, LoRA and the subspace model: E[P^T P] = I, own seeds, exact LoRA, allocation."""

import copy

import pytest
import torch

from benchlab import zoo
from benchlab.sublora.lora import LoRAQV, add_lora
from benchlab.sublora.projectors import DenseProjector, derive_seed, make_projector
from benchlab.sublora.subspace import SubspaceConfig, SubspaceModel, plan_blocks


@pytest.fixture(scope="module")
def base():
    return zoo.build("gpt2-tiny", seed=0)


@pytest.mark.parametrize("kind", ["dense", "sparse", "kron"])
def test_projector_gram_is_identity_in_expectation(kind):
    D, d, n = 2304, 16, 100
    mats = [make_projector(kind, D, d, seed=s).dense().double() for s in range(n)]
    gram = sum(P.T @ P for P in mats) / n
    assert (gram - torch.eye(d, dtype=torch.float64)).abs().max() < 0.1
    # a wrong scale (e.g. 1/D instead of 1/sqrt(D) per entry) would miss by far
    assert abs(torch.diagonal(gram).mean() - 1) < 0.03


@pytest.mark.parametrize("kind", ["dense", "sparse", "kron"])
def test_projector_is_linear_and_its_gradient_is_the_transpose(kind):
    P = make_projector(kind, 300, 7, seed=3)
    M = P.dense().double()
    w = torch.randn(7, requires_grad=True)
    g = torch.randn(300)
    (P(w) * g).sum().backward()
    torch.testing.assert_close(P(w.detach()).double(), M @ w.detach().double(), rtol=1e-5,
                               atol=1e-5)
    torch.testing.assert_close(w.grad.double(), M.T @ g.double(), rtol=1e-4, atol=1e-4)


def test_lazy_dense_matches_cached_and_is_regenerated_from_the_seed(monkeypatch):
    monkeypatch.setattr("benchlab.sublora.projectors.CHUNK_ELEMS", 7 * 50)  # 50 rows per chunk
    cached = DenseProjector(333, 7, seed=5)
    lazy = DenseProjector(333, 7, seed=5, cache_mb=0)
    assert cached.cached and not lazy.cached and lazy.n_chunks == 7
    w1 = torch.randn(7, requires_grad=True)
    w2 = w1.detach().clone().requires_grad_(True)
    g = torch.randn(333)
    (cached(w1) * g).sum().backward()
    (lazy(w2) * g).sum().backward()
    torch.testing.assert_close(cached(w1), lazy(w2))
    torch.testing.assert_close(w1.grad, w2.grad)
    # a chunk is generated alone, from its own derived seed
    gen = torch.Generator().manual_seed(derive_seed(5, "chunk", 3))
    assert torch.equal(lazy.chunk(3), torch.randn(50, 7, generator=gen) / 333 ** 0.5)


def test_lora_equals_merged_weights(base):
    model = copy.deepcopy(base)
    add_lora(model, rank=4, alpha=32, seed=1)
    for n, p in model.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.05)
    merged = copy.deepcopy(base)
    for blk, mblk in zip(model.transformer.h, merged.transformer.h, strict=True):
        lo: LoRAQV = blk.attn.c_attn
        W = mblk.attn.c_attn.weight.data  # Conv1D: y = x W, W (C, 3C)
        C = lo.n_embd
        W[:, :C] += lo.scaling * (lo.lora_B_q @ lo.lora_A_q).T.detach()
        W[:, 2 * C:] += lo.scaling * (lo.lora_B_v @ lo.lora_A_v).T.detach()
    idx = torch.randint(0, 4096, (2, 12))
    torch.testing.assert_close(model(idx).logits, merged(idx).logits, rtol=1e-4, atol=1e-4)
    assert all(("lora_" in n) == p.requires_grad for n, p in model.named_parameters())


def test_zero_w_is_the_base_model_and_only_w_and_gates_train(base):
    m = SubspaceModel(copy.deepcopy(base), SubspaceConfig(intrinsic_dim=64,
                                                          allocation_mode="learned"), seed=42)
    idx = torch.randint(0, 4096, (2, 10))
    torch.testing.assert_close(m(idx), base(idx).logits)
    assert [n for n, p in m.named_parameters() if p.requires_grad] == ["w", "gates"]


def test_a_and_b_projectors_have_their_own_seeds(base):
    cfg = SubspaceConfig(intrinsic_dim=400, allocation_mode="fixed", allocation_ratio=0.5)
    m = SubspaceModel(copy.deepcopy(base), cfg, seed=42)
    pa, pb = m.projectors[0], m.projectors[1]
    assert (m.blocks[0].name, m.blocks[1].name) == ("h0.A", "h0.B")
    assert (pa.D, pa.d) == (pb.D, pb.d) and pa.seed != pb.seed
    assert not torch.allclose(pa.dense(), pb.dense())
    assert len({p.seed for p in m.projectors}) == len(m.projectors)
    other = SubspaceModel(copy.deepcopy(base), cfg, seed=123)  # the run seed reaches P
    same = SubspaceModel(copy.deepcopy(base), cfg, seed=42)
    assert not torch.allclose(other.projectors[0].dense(), pa.dense())
    assert torch.equal(same.projectors[0].dense(), pa.dense())


def test_allocation_plans():
    shapes = {f"transformer.h.{i}.attn.c_attn.lora_{s}_{q}": 512
              for i in range(4) for s in "AB" for q in "qv"}
    blocks, groups = plan_blocks(shapes, SubspaceConfig(1000, "uniform"))
    assert len(blocks) == 1 and blocks[0].D == 8192 and groups == []
    blocks, groups = plan_blocks(shapes, SubspaceConfig(1000, "fixed", allocation_ratio=0.2))
    assert groups == []
    dB = [b.stop - b.start for b in blocks if b.side == "B"]
    dA = [b.stop - b.start for b in blocks if b.side == "A"]
    assert dB == [50] * 4 and dA == [200] * 4  # r = d_B / d per layer
    assert sorted((b.start, b.stop) for b in blocks)[-1][1] == 1000
    blocks, groups = plan_blocks(shapes, SubspaceConfig(1002, "learned"))
    assert groups == ["h0", "h1", "h2", "h3"]
    assert sum(b.stop - b.start for b in blocks if b.side == "A") == 1002
    assert all(all("lora_A" in n for n in b.params) for b in blocks if b.side == "A")


def test_learned_gates_get_gradients_and_split_coordinates(base):
    m = SubspaceModel(copy.deepcopy(base), SubspaceConfig(intrinsic_dim=200,
                                                          allocation_mode="learned"), seed=1)
    with torch.no_grad():
        m.w.normal_(0, 0.05)
    idx = torch.randint(0, 4096, (2, 10))
    m.loss(idx, idx).backward()
    assert m.gates.grad is not None and m.gates.grad.abs().min() > 0
    with torch.no_grad():
        m.gates.fill_(20.0)  # gamma -> 1: every coordinate goes to B, none to A
    b_blk, a_blk = m.blocks[1], m.blocks[0]
    x_b = m.block_input(b_blk, m.w, m.gates)
    x_a = m.block_input(a_blk, m.w, m.gates)
    w = m.w[b_blk.start:b_blk.stop]
    torch.testing.assert_close(x_a + x_b, w)  # the soft mask splits each coordinate
    # the mask's soft edge (width ~ 1 / gating_scale) sits at gamma d_g = d_g: all else is B
    torch.testing.assert_close(x_b[:-5], w[:-5], atol=1e-3, rtol=0)
    assert x_a[:-5].abs().max() < 1e-3 and m.d_share_B()[0] > 0.99


def test_at_w0_the_A_side_gets_no_gradient_because_B_starts_at_zero(base):
    """Why an A-heavy fixed split learns least: at w = 0 every LoRA B is zero, so dL/dA = 0 and
    the A-side coordinates of w get exactly no gradient; the B side does."""
    m = SubspaceModel(copy.deepcopy(base), SubspaceConfig(intrinsic_dim=200,
                      allocation_mode="fixed", allocation_ratio=0.2), seed=3)
    params = dict(m.net.named_parameters())
    assert all(params[n].abs().max() == 0 for n in m.names if ".lora_B" in n)
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, base.config.vocab_size, (2, 16), generator=g)
    m.loss(idx[:, :-1], idx[:, 1:]).backward()
    for b in m.blocks:
        grad = m.w.grad[b.start:b.stop]
        if b.side == "A":
            assert grad.abs().max() == 0, b.name
        else:
            assert grad.abs().max() > 0, b.name
