"""Block-sparse MLP: only the kept neuron blocks of fc1 (rows) and of fc2 (columns) are computed.

    python -c "import torch; from benchlab.long_exposure.ops_mlp import *; \
x = torch.randn(64, 32, requires_grad=True); w1, w2 = torch.randn(128, 32), torch.randn(32, 128); \
keep = torch.rand(8) < 0.5; print(block_sparse_mlp(x, w1, None, w2, None, keep, 16).shape)"

fc1.weight (F, d), fc2.weight (d, F); `keep` (bool, F // block) says which blocks of `block`
consecutive neurons are computed. Forward and backward equal the masked dense MLP

    y = (relu(x @ w1.T + b1) * neuron_mask) @ w2.T + b2            (masked_dense_mlp)

Masks are per batch (or sequence), so the kept weights are gathered once per call and all tokens
go through two GEMMs. Weight / bias gradients are computed only where required (PEFT: frozen
base weights cost nothing).
"""

import torch
import torch.nn.functional as F


def keep_to_index(keep: torch.Tensor, block: int) -> torch.Tensor:
    """Kept block mask (nblocks,) -> sorted neuron indices (kept * block,) as int64."""
    blocks = keep.nonzero().flatten()
    offs = torch.arange(block, device=keep.device)
    return (blocks[:, None] * block + offs[None, :]).flatten()


def neuron_mask(keep: torch.Tensor, block: int) -> torch.Tensor:
    """Block mask (..., nblocks) -> neuron mask (..., nblocks * block)."""
    return keep.repeat_interleave(block, dim=-1)


def gather(w: torch.Tensor, idx: torch.Tensor, dim: int, block: int = 1) -> torch.Tensor:
    """w's slices idx along dim (0 or 1), contiguous (all kept: w itself). With `block` > 1
    the kept blocks are copied as runs (an fc2 column gather then copies 64-float runs instead
    of single floats: 1.1-1.2x the operator at densities 0.1-0.3 on CPU)."""
    if idx.numel() == w.shape[dim]:
        return w
    if block == 1 or idx.numel() == 0:
        return w.index_select(dim, idx)
    blocks = idx[::block] // block
    shape = list(w.shape)
    view = shape[:dim] + [shape[dim] // block, block] + shape[dim + 1:]
    shape[dim] = idx.numel()
    return w.reshape(view).index_select(dim, blocks).reshape(shape)


def sparse_fc1(x, w1, b1, idx, block: int = 1) -> torch.Tensor:
    """relu(x @ w1[idx].T + b1[idx]): (N, K), the kept neurons' activations (the operator's first
    half; every block kept: idx is the identity, no copies)."""
    w1k = gather(w1, idx, 0, block)  # (K, d) contiguous
    b1k = gather(b1, idx, 0, block) if b1 is not None else None
    h = torch.addmm(b1k, x, w1k.t()) if b1k is not None else x @ w1k.t()
    return h.relu_()


def sparse_fc2(h, w2, b2, idx, block: int = 1) -> torch.Tensor:
    """h (N, K) @ w2[:, idx].T + b2: (N, d), the output from the kept neurons (second half)."""
    w2k = gather(w2, idx, 1, block)  # (d, K) contiguous
    return torch.addmm(b2, h, w2k.t()) if b2 is not None else h @ w2k.t()


class _BlockSparseMLP(torch.autograd.Function):
    """y = relu(x @ w1[idx].T + b1[idx]) @ w2[:, idx].T + b2 with x (N, d), idx (K,) in runs of
    `block` neurons (keep_to_index)."""

    @staticmethod
    def forward(ctx, x, idx, block, w1, b1, w2, b2):
        h = sparse_fc1(x, w1, b1, idx, block)  # (N, K)
        y = sparse_fc2(h, w2, b2, idx, block)  # (N, d)
        # the gathered w1k / w2k are not saved (they would count as activations): the
        # backward gathers them again from the weights, which are saved anyway
        # x is only needed for fc1's weight gradient (a frozen fc1 saves no input, as in F.linear)
        ctx.save_for_backward(x if ctx.needs_input_grad[3] else None, idx, h, w1, w2)
        ctx.shapes, ctx.block = (w1.shape, w2.shape), block
        return y

    @staticmethod
    def backward(ctx, gy):
        x, idx, h, w1, w2 = ctx.saved_tensors
        w1_shape, w2_shape = ctx.shapes
        need_x, _, _, need_w1, need_b1, need_w2, need_b2 = ctx.needs_input_grad
        gx = gw1 = gb1 = gw2 = gb2 = None
        gy = gy.contiguous()
        if need_w2:  # (d, F), only the kept columns are non-zero
            gw2 = gy.new_zeros(w2_shape)
            gw2.index_copy_(1, idx, gy.t() @ h)
        if need_b2:
            gb2 = gy.sum(0)
        if need_x or need_w1 or need_b1:
            gh = gy @ gather(w2, idx, 1, ctx.block)  # (N, K)
            gh = torch.ops.aten.threshold_backward(gh, h, 0.0)  # ReLU's backward, one pass
            if need_x:
                gx = gh @ gather(w1, idx, 0, ctx.block)  # (N, d)
            if need_w1:
                gw1 = gy.new_zeros(w1_shape)
                gw1.index_copy_(0, idx, gh.t() @ x)
            if need_b1:
                gb1 = gy.new_zeros(w1_shape[0])
                gb1.index_copy_(0, idx, gh.sum(0))
        return gx, None, None, gw1, gb1, gw2, gb2


def block_sparse_mlp(x, w1, b1, w2, b2, keep, block: int):
    """The MLP over the kept neuron blocks only: x (..., d); keep bool (F // block,) shared by
    all tokens, or (B, F // block) with x (B, L, d), one mask per sequence; b1 / b2 may be None.
    Under autocast, inputs and weights are cast to the autocast dtype first (as F.linear)."""
    dev = x.device.type
    if torch.is_autocast_enabled(dev):
        dt = torch.get_autocast_dtype(dev)
        x, w1, w2 = x.to(dt), w1.to(dt), w2.to(dt)
        b1, b2 = (b.to(dt) if b is not None else None for b in (b1, b2))
    d = x.shape[-1]
    if keep.dim() == 1:
        idx = keep_to_index(keep, block)
        y = _BlockSparseMLP.apply(x.reshape(-1, d).contiguous(), idx, block, w1, b1, w2, b2)
        return y.reshape(*x.shape[:-1], w2.shape[0])
    if x.dim() != 3 or keep.shape[0] != x.shape[0]:
        raise ValueError(f"per-sequence keep {tuple(keep.shape)} needs x (B, L, d), got "
                         f"{tuple(x.shape)}")
    outs = [_BlockSparseMLP.apply(x[b].contiguous(), keep_to_index(keep[b], block), block, w1,
                                  b1, w2, b2) for b in range(x.shape[0])]  # GEMMs per sequence
    return torch.stack(outs)


def masked_dense_mlp(x, w1, b1, w2, b2, keep, block: int):
    """Reference: the dense MLP with dropped neurons zeroed after the ReLU (plain autograd)."""
    m = neuron_mask(keep, block).to(x.dtype)  # (F,) or (B, F)
    if m.dim() == 2:
        m = m[:, None, :]
    h = F.relu(F.linear(x, w1, b1)) * m
    return F.linear(h, w2, b2)


def dense_mlp(x, w1, b1, w2, b2):
    """Baseline: OPT's dense MLP."""
    return F.linear(F.relu(F.linear(x, w1, b1)), w2, b2)


def random_keep(nblocks: int, sparsity: float, *, generator=None, batch: int | None = None):
    """A random block mask with round((1 - sparsity) * nblocks) kept blocks (per row if batch)."""
    k = round((1.0 - sparsity) * nblocks)
    shape = (batch or 1, nblocks)
    order = torch.rand(shape, generator=generator).argsort(dim=-1)
    keep = order < k
    return keep[0] if batch is None else keep
