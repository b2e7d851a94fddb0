"""Attention through torch's FlexAttention: one BlockMask from the documents of packed rows and,
optionally, Long Exposure's kept 16x16 blocks (the exposer's or a predictor's).

    python -c "import torch; from benchlab.long_exposure import flex, documents as D; \
ids = torch.randint(0, 50, (1, 256)); q = k = v = torch.randn(1, 2, 256, 64); \
print(flex.attention(q, k, v, flex.block_mask(D.doc_ids(ids, 0), 2)).shape)"

The mask_mod is exact per element; the kernel skips work only at tile grain: torch's default
128 on CUDA (FLEX_BLOCK), 32 on CPU (FLEX_BLOCK_CPU: at L=1024 with ~128-token documents,
128-token tiles skip almost nothing; they ran 0.79x and 32-token tiles 1.99x the forward of
SDPA with the document mask at the 125m shape). The compiled kernel is built once per process
and shape (about a minute on CPU). torch 2.13 has no FlexAttention backward on CPU: there this
path is forward-only, and `attention` says so when an input requires grad.
"""

import functools

import torch

from benchlab.core.errors import BenchlabError

from .ops_attn import BLOCK as ATTN_BLOCK

FLEX_BLOCK = 128
FLEX_BLOCK_CPU = 32


@functools.cache
def _compiled():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def block_mask(docs: torch.Tensor, heads: int, keep: torch.Tensor | None = None):
    """BlockMask of (B, H, L, L) attention: causal, inside documents `docs` (B, L) and, with
    `keep` (B, H, L/16, L/16) bool, inside the kept blocks."""
    from torch.nn.attention.flex_attention import create_block_mask

    B, L = docs.shape
    nb = -(-L // ATTN_BLOCK)
    flex_block = FLEX_BLOCK_CPU if docs.device.type == "cpu" else FLEX_BLOCK
    if keep is not None and keep.shape != (B, heads, nb, nb):
        raise BenchlabError(f"keep: shape {tuple(keep.shape)}, expected {(B, heads, nb, nb)}")
    if L % flex_block:
        raise BenchlabError(f"seq_len: {L} is not a multiple of the FlexAttention block "
                            f"{flex_block}")

    def doc_causal(b, h, q, kv):
        return (q >= kv) & (docs[b, q] == docs[b, kv])

    def kept(b, h, q, kv):
        return doc_causal(b, h, q, kv) & keep[b, h, q // ATTN_BLOCK, kv // ATTN_BLOCK]

    fn = doc_causal if keep is None else kept
    return create_block_mask(fn, B, heads if keep is not None else None, L, L,
                             device=docs.device, BLOCK_SIZE=flex_block)


def density(bm) -> float:
    """Tiles the kernel visits (partial or full) / causal tiles."""
    n = bm.shape[-1] // bm.BLOCK_SIZE[1]
    visited = float(bm.kv_num_blocks.sum() + (bm.full_kv_num_blocks.sum()
                                               if bm.full_kv_num_blocks is not None else 0))
    heads = bm.kv_num_blocks.shape[0] * bm.kv_num_blocks.shape[1]
    return visited / (heads * n * (n + 1) // 2)


def attention(q, k, v, bm, *, scale=None, compiled: bool = True):
    """FlexAttention of q, k, v (B, H, L, D) under BlockMask `bm`; see the module docstring."""
    from torch.nn.attention.flex_attention import flex_attention

    if q.device.type == "cpu" and torch.is_grad_enabled() and any(
            t.requires_grad for t in (q, k, v)):
        raise BenchlabError("attn: flex has no backward on CPU in torch "
                            f"{torch.__version__}; train with attn=sparse or on CUDA")
    fn = _compiled() if compiled else flex_attention
    return fn(q, k, v, block_mask=bm, scale=scale)
