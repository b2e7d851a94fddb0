"""Mask sources (patch.py) made of other sources, for the predictor ablation (setups.mask_source).
"""

import torch

from . import patch


def random_subset(allowed: torch.Tensor, k: torch.Tensor, generator) -> torch.Tensor:
    """bool like `allowed` (..., n): for each leading index, k[...] of its allowed entries drawn
    uniformly at random (all of them where k is larger)."""
    r = torch.rand(allowed.shape, generator=generator).to(allowed.device)
    rank = r.masked_fill(~allowed, 2.0).argsort(-1).argsort(-1)  # allowed entries rank first
    return (rank < k[..., None]) & allowed


class RandomLike:
    """Seeded random masks with the block counts of `like`'s on the same input (a fresh draw
    per call): attention keeps every diagonal block (as the predictors do) and draws the rest
    per (row, head) among the off-diagonal document blocks; the MLP draws among all blocks."""

    def __init__(self, like, seed: int = 0):
        self.like = like
        self.gen = torch.Generator().manual_seed(seed)

    def attn(self, i, h, docs):
        keep = self.like.attn(i, h, docs)  # (B, H, nb, nb), every diagonal block kept
        B, H, nb, _ = keep.shape
        eye = torch.eye(nb, dtype=torch.bool, device=keep.device)
        allowed = (docs.blocks(patch.ATTN_BLOCK)[:, None] & ~eye).expand(B, H, nb, nb)
        k = keep.sum((-1, -2)) - nb
        off = random_subset(allowed.reshape(B, H, nb * nb), k, self.gen)
        return off.view(B, H, nb, nb) | eye

    def mlp(self, i, h, docs):
        keep = self.like.mlp(i, h, docs)  # (B, F / block)
        return random_subset(torch.ones_like(keep), keep.sum(-1), self.gen)

    def to(self, device) -> "RandomLike":
        to_device(self.like, device)
        return self


class Split:
    """Attention masks from one source, MLP masks from another."""

    def __init__(self, attn_source, mlp_source):
        self.attn_source, self.mlp_source = attn_source, mlp_source

    def attn(self, i, h, docs):
        return self.attn_source.attn(i, h, docs)

    def mlp(self, i, h, docs):
        return self.mlp_source.mlp(i, h, docs)

    def to(self, device) -> "Split":
        to_device(self.attn_source, device)
        to_device(self.mlp_source, device)
        return self


def to_device(source, device):
    """`source` with the predictors it holds moved to `device` in place (if it has any)."""
    if hasattr(source, "to"):
        source.to(device)
    return source
