"""Block-sparse attention: only the kept 16x16 blocks of QK^T are computed.

    python -c "import torch; from benchlab.long_exposure.ops_attn import *; \
q, k, v = torch.randn(3, 1, 2, 64, 32).unbind(0); m = causal_block_mask(1, 2, 64); \
print(block_sparse_attention(q, k, v, m).shape)"

q, k, v (B, H, L, D); `block_mask` bool (B, H, nb, nb): whether query block i attends to key
block j; `causal`, `key_lengths` (B,) and `docs` (B, L) document ids mask entries inside kept
blocks too (blocks with no same-document pair are dropped before the layout). The result equals

    softmax over kept entries of (q @ k.T * scale) @ v      (`masked_dense_attention`)

forward and backward; a query row with no kept entry gives zeros (and zero gradients).

Three steps, as in the artifact: sampled dense-dense, row softmax, sparse-dense times V. Each
query row-block's kept key blocks are gathered into a padded (rows, cap * block, D) tensor, rows
bucketed by kept count (caps on a geometric grid, waste <= ~25%), so each step is one bmm per
bucket. A mask that keeps every causal block runs fused causal SDPA instead. Cost: gathered K
and V duplicate each key block per row-block that keeps it, so the operator is memory-bound on
CPU and beats SDPA only at high sparsity. Like flash attention the forward saves one
log-sum-exp per row and the backward recomputes by bucket: saved memory is O(L D).
"""

import math

import torch
import torch.nn.functional as F

BLOCK = 16  # tokens per attention block: the one definition (exposer, flex, patch import it)


def causal_block_mask(B: int, H: int, L: int, block: int = BLOCK, device=None) -> torch.Tensor:
    nb = -(-L // block)
    return torch.ones(nb, nb, dtype=torch.bool, device=device).tril().expand(B, H, nb, nb).clone()


def random_block_mask(B: int, H: int, L: int, sparsity: float, block: int = BLOCK,
                      generator=None, device=None) -> torch.Tensor:
    """Causal block mask keeping the diagonal and a random (1 - sparsity) of the other causal
    blocks of every (b, h) -- exactly round((1 - sparsity) * n_offdiag) of them."""
    nb = -(-L // block)
    off = torch.ones(nb, nb, dtype=torch.bool).tril(-1)
    n_off = int(off.sum())
    keep_n = round((1.0 - sparsity) * n_off)
    rank = torch.rand(B, H, n_off, generator=generator).argsort(-1)
    kept_off = rank < keep_n
    mask = torch.eye(nb, dtype=torch.bool).expand(B, H, nb, nb).clone()
    mask[:, :, off] = kept_off
    return mask.to(device) if device is not None else mask


def block_density(block_mask: torch.Tensor, causal: bool = True) -> float:
    """Kept blocks / blocks the dense (causal) computation needs."""
    nb = block_mask.shape[-1]
    allowed = torch.ones(nb, nb, dtype=torch.bool, device=block_mask.device)
    if causal:
        allowed = allowed.tril()
    return float((block_mask & allowed).sum() / (allowed.sum() * block_mask[..., 0, 0].numel()))


def _element_mask(block_mask, L, causal, key_lengths, block, docs=None):
    """(B, H, L, L) bool: the entries the block-sparse attention keeps."""
    m = block_mask.repeat_interleave(block, -1).repeat_interleave(block, -2)[..., :L, :L]
    if causal:
        m = m & torch.ones(L, L, dtype=torch.bool, device=m.device).tril()
    if key_lengths is not None:
        m = m & (torch.arange(L, device=m.device) < key_lengths[:, None, None, None])
    if docs is not None:
        m = m & (docs[:, None, :, None] == docs[:, None, None, :])
    return m


def masked_dense_attention(q, k, v, block_mask, *, causal=True, key_lengths=None, scale=None,
                           block: int = BLOCK, docs=None):
    """Reference: dense attention restricted to the kept entries; empty rows give zeros."""
    L = q.shape[-2]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    m = _element_mask(block_mask, L, causal, key_lengths, block, docs)
    s = (q @ k.transpose(-1, -2)) * scale
    any_row = m.any(-1, keepdim=True)
    s = torch.where(m, s, torch.full_like(s, -math.inf))
    s = torch.where(any_row, s, torch.zeros_like(s))  # empty rows: finite, zeroed below
    p = torch.softmax(s, -1) * any_row
    return p @ v


def eager_attention(q, k, v, causal: bool = True, scale=None):
    """Baseline: HF's eager path (matmul, additive mask, softmax, matmul)."""
    L = q.shape[-2]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    s = (q @ k.transpose(-1, -2)) * scale
    if causal:
        s = s + torch.full((L, L), -math.inf, device=q.device, dtype=q.dtype).triu(1)
    return torch.softmax(s, -1) @ v


def sdpa_attention(q, k, v, causal: bool = True, scale=None):
    """Baseline: torch's fused scaled_dot_product_attention."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)


DENSE_IMPLS = ("eager", "sdpa", "sdpa_docs", "sdpa_causal")


def document_attention(q, k, v, docs, impl: str = "sdpa", scale=None):
    """Dense attention of packed rows (`docs` a documents.Docs); `impl`: eager, sdpa (with the
    document mask), sdpa_docs (causal SDPA per document slice: exact per-document work),
    sdpa_causal (across documents: leaks, a cost reference only)."""
    if impl == "sdpa_causal":
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    if impl == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=docs.mask(), scale=scale)
    if impl == "eager":
        scale = q.shape[-1] ** -0.5 if scale is None else scale
        s = (q @ k.transpose(-1, -2)) * scale
        return torch.softmax(s.masked_fill(~docs.mask(), -math.inf), -1) @ v
    if impl == "sdpa_docs":
        return torch.cat([torch.cat([F.scaled_dot_product_attention(
            q[b:b + 1, :, s:e], k[b:b + 1, :, s:e], v[b:b + 1, :, s:e], is_causal=True,
            scale=scale) for s, e in spans], dim=2) for b, spans in enumerate(docs.spans())])
    raise ValueError(f"attention impl: unknown {impl!r}; choose {', '.join(DENSE_IMPLS)}")


# ---- the block-sparse layout ----------------------------------------------------------------

def _caps(max_count: int) -> list[int]:
    """Bucket capacities: 1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, ... (waste <= ~25%)."""
    caps, c = [], 1
    while c < max_count:
        caps.append(c)
        c = c + 1 if c < 4 else c + max(1, 2 ** (int(math.log2(c)) - 2))
    caps.append(max_count)
    return caps


def build_layout(block_mask: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(rows (n,), cols (n, cap))]: the flat (b, h, i) row-blocks bucketed by kept count, and
    their flat key blocks (padded with -1); rows without a kept block are left out."""
    B, H, nb, _ = block_mask.shape
    flat = block_mask.reshape(-1, nb)  # (R, nb)
    counts = flat.sum(-1)
    max_count = int(counts.max()) if flat.numel() else 0
    if max_count == 0:
        return []
    base = (torch.arange(flat.shape[0], device=flat.device) // nb) * nb  # (b, h) offset
    # kept column ids first, in ascending order, padded with -1
    order = torch.where(flat, torch.arange(nb, device=flat.device), nb).sort(-1).values
    cols_all = torch.where(order < nb, order + base[:, None], -1)  # (R, nb)
    layout, lo = [], 0
    for cap in _caps(max_count):
        sel = ((counts > lo) & (counts <= cap)).nonzero().flatten()
        lo = cap
        if sel.numel():
            layout.append((sel, cols_all[sel, :cap].contiguous()))
    return layout


def _bi(idx, H, nb):
    """Flat (b, h, i) row-block ids -> flat (b, i) ids (the document ids do not depend on h)."""
    return (idx // (H * nb)) * nb + idx % nb


def _mask_docs_(s, rows, cols, docb, H, nb):
    """-inf where query and key are in different documents; only for (row, column) block pairs
    not inside one single document (most kept pairs are, and cost nothing here)."""
    n, cap = cols.shape
    qd = docb[_bi(rows, H, nb)]  # (n, block)
    kd = docb[_bi(cols.clamp_min(0), H, nb)]  # (n, cap, block)
    single = (qd[:, None, :1] == qd[:, None, -1:]) & (kd[..., :1] == kd[..., -1:]) & (
        qd[:, None, :1] == kd[..., :1])  # (n, cap, 1): both blocks in the same one document
    mixed = (~single[..., 0]).any(-1).nonzero().flatten()
    if mixed.numel():
        blk = qd.shape[-1]
        cross = qd[mixed][:, :, None] != kd[mixed].reshape(mixed.numel(), 1, cap * blk)
        s[mixed] = s[mixed].masked_fill(cross, -math.inf)


def _mask_scores_(s, rows, cols, nb, block, causal, key_limit):
    """Set the scores of one bucket (n, block, cap * block) to -inf where not kept: padded
    slots and keys beyond the length (a (n, cap * block) mask broadcast over the rows), then,
    if causal, the upper triangle of diagonal blocks and any block above the diagonal."""
    n, cap = cols.shape
    r = torch.arange(block, device=cols.device)
    kpos = ((cols % nb)[:, :, None] * block + r).reshape(n, cap * block)
    ok = (cols >= 0).repeat_interleave(block, -1) & (kpos < key_limit[:, None])
    s.masked_fill_(~ok[:, None, :], -math.inf)
    if not causal:
        return
    rb, cb = (rows % nb)[:, None], cols % nb
    s4 = s.view(n, block, cap, block)
    above = ((cols >= 0) & (cb > rb)).nonzero(as_tuple=True)
    if above[0].numel():
        s4[above[0], :, above[1], :] = -math.inf
    diag = ((cols >= 0) & (cb == rb)).nonzero(as_tuple=True)
    if diag[0].numel():
        upper = torch.ones(block, block, dtype=torch.bool, device=s.device).triu(1)
        s4[diag[0], :, diag[1], :] = s4[diag[0], :, diag[1], :].masked_fill(upper, -math.inf)


def _gather(blocks: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """blocks (R, block, D) at a bucket's key blocks cols (n, cap) -> (n, cap * block, D), one row
    copy per block (embedding lookup: the fastest row gather on CPU; padded slots read block 0)."""
    R, blk, D = blocks.shape
    n, cap = cols.shape
    rows = F.embedding(cols.clamp_min(0).flatten(), blocks.reshape(R, blk * D))
    return rows.view(n, cap * blk, D)


def _bucket_scores(qb, kb, rows, cols, nb, block, causal, limit_of_row, scale, docb, H):
    """Masked scores (n, blk, cap*blk) of one bucket and its gathered K (n, cap*blk, D)."""
    kr = _gather(kb, cols)
    s = torch.bmm(qb.index_select(0, rows), kr.transpose(1, 2)).mul_(scale)  # sampled DD
    _mask_scores_(s, rows, cols, nb, block, causal, limit_of_row[rows])
    if docb is not None:
        _mask_docs_(s, rows, cols, docb, H, nb)
    return s, kr


def _bhi(rows, H, nb):
    """Flat row-block ids -> (b, h, i) index tensors."""
    return rows // (H * nb), (rows // nb) % H, rows % nb


class _BlockSparseAttention(torch.autograd.Function):
    """Saves q, k, v, out, the bool block mask and the log-sum-exp of every query row; the backward
    recomputes the gathered K, V and the probabilities bucket by bucket (flash-attention
    style), so saved memory is O(L D + L), not O(kept blocks)."""

    @staticmethod
    def forward(ctx, q, k, v, block_mask, key_limit, causal, scale, block, docb):
        B, H, L, D = q.shape
        nb = L // block
        qb, kb, vb = (t.reshape(B * H * nb, block, D) for t in (q, k, v))
        # out lives in (B, L, H, D) memory, so the caller's transpose(1, 2).reshape(B, L, H * D)
        # for out_proj is a view, not a second saved copy; written per row-block via (b, h, i)
        out = q.new_zeros(B, L, H, D).permute(0, 2, 1, 3)  # (B, H, L, D) view
        out5 = out.view(B, H, nb, block, D)
        saved = []
        limit_of_row = key_limit.repeat_interleave(H * nb)  # (R,)
        for rows, cols in build_layout(block_mask):
            s, _ = _bucket_scores(qb, kb, rows, cols, nb, block, causal, limit_of_row, scale,
                                  docb, H)
            mx = s.amax(-1, keepdim=True)
            mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
            p = s.sub_(mx).exp_()  # masked entries: exp(-inf) = 0
            den = p.sum(-1, keepdim=True)
            empty = den == 0
            p = p.div_(torch.where(empty, torch.ones_like(den), den))  # sparse softmax
            out5[_bhi(rows, H, nb)] = torch.bmm(p, _gather(vb, cols))  # sparse-dense (n, blk, D)
            # log-sum-exp per query row; +inf for rows with no kept key (p recomputes to 0)
            lse = torch.where(empty, torch.full_like(den, math.inf), mx + den.log())
            saved.append(lse)
        # the layout is rebuilt in backward from the bool mask (a sort: cheaper to redo than
        # the int64 index tensors are to keep)
        ctx.save_for_backward(q, k, v, out, block_mask, key_limit, docb, *saved)
        ctx.meta = (scale, block, causal, nb)
        return out

    @staticmethod
    def backward(ctx, gout):
        q, k, v, out, block_mask, key_limit, docb, *saved = ctx.saved_tensors
        scale, block, causal, nb = ctx.meta
        B, H, L, D = q.shape
        qb, kb, vb = (t.reshape(-1, block, D) for t in (q, k, v))
        go = gout.contiguous().reshape(-1, block, D)
        gq, gk, gv = torch.zeros_like(qb), torch.zeros_like(kb), torch.zeros_like(vb)
        limit_of_row = key_limit.repeat_interleave(H * nb)  # (R,)
        for (rows, cols), lse in zip(build_layout(block_mask), saved, strict=True):
            n, cap = cols.shape
            colz = cols.clamp_min(0).flatten()
            s, kr = _bucket_scores(qb, kb, rows, cols, nb, block, causal, limit_of_row, scale,
                                   docb, H)
            p = s.sub_(lse).exp_()  # recomputed probabilities (n, blk, cap*blk)
            vr = _gather(vb, cols)
            gor = go.index_select(0, rows)  # (n, blk, D)
            ob = out.view(B, H, nb, block, D)[_bhi(rows, H, nb)]  # (n, blk, D)
            delta = (gor * ob).sum(-1, keepdim=True)  # (n, blk, 1)
            gv.index_add_(0, colz, torch.bmm(p.transpose(1, 2), gor).reshape(n * cap, block, D))
            gs = torch.bmm(gor, vr.transpose(1, 2)).sub_(delta).mul_(p).mul_(scale)
            del vr, p
            gq.index_copy_(0, rows, torch.bmm(gs, kr))
            gk.index_add_(0, colz, torch.bmm(gs.transpose(1, 2), qb.index_select(0, rows))
                          .reshape(n * cap, block, D))
        shape = (B, H, L, D)
        return (gq.reshape(shape), gk.reshape(shape), gv.reshape(shape), None, None, None, None,
                None, None)


def block_sparse_attention(q, k, v, block_mask, *, causal: bool = True, key_lengths=None,
                           scale=None, block: int = BLOCK, docs=None, shortcut: bool = True):
    """Attention over the kept blocks only; see the module docstring. `shortcut=False`: never
    hand a full mask to SDPA (benchmarks timing the operator itself)."""
    B, H, L, D = q.shape
    nb = -(-L // block)
    if block_mask.shape != (B, H, nb, nb):
        raise ValueError(f"block_mask {tuple(block_mask.shape)} != (B, H, nb, nb) = "
                         f"{(B, H, nb, nb)} for L={L}, block={block}")
    docb = None
    if docs is not None:
        from .documents import block_mask as doc_blocks

        if docs.shape != (B, L):
            raise ValueError(f"docs {tuple(docs.shape)} != (B, L) = {(B, L)}")
        block_mask = block_mask.to(q.device) & doc_blocks(docs.to(q.device), block)[:, None]
        # padded positions get their own id -1 (beyond the key limit anyway)
        docb = F.pad(docs.to(q.device), (0, nb * block - L), value=-1).view(B * nb, block)
    scale = D ** -0.5 if scale is None else float(scale)
    limit = torch.full((B,), L, dtype=torch.long, device=q.device)
    if key_lengths is not None:
        limit = torch.minimum(limit, key_lengths.to(q.device, torch.long))
    if shortcut and causal and key_lengths is None and docs is None:  # all kept: SDPA
        tril = torch.ones(nb, nb, dtype=torch.bool, device=q.device).tril()
        if bool(block_mask.to(q.device)[..., tril].all()):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    pad = nb * block - L
    if pad:  # pad to whole blocks; padded keys are beyond `limit`, padded rows are cut off
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    out = _BlockSparseAttention.apply(q.contiguous(), k.contiguous(), v.contiguous(),
                                      block_mask.to(q.device), limit, causal, scale, block,
                                      docb)
    return out[..., :L, :] if pad else out

