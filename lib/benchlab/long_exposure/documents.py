"""Documents inside packed rows: which token belongs to which document, and the causal
block-diagonal structure that follows (no token attends outside its own document).

    python -c "import torch; from benchlab.long_exposure.documents import *; \
ids = torch.tensor([[5, 6, 0, 7, 0, 8, 9, 9]]); print(doc_ids(ids, eos=0))"

Packed rows are documents each followed by the end-of-text token `eos`. The document of token t
is the number of `eos` strictly before t in its row, so an `eos` belongs to the document it ends,
a row's leading tail is document 0, and ids are non-decreasing along a row.
"""

import torch

from benchlab.core.errors import BenchlabError


def doc_ids(ids: torch.Tensor, eos: int) -> torch.Tensor:
    """(B, L) token ids -> (B, L) document index of every token (see module docstring)."""
    if ids.dim() != 2:
        raise BenchlabError(f"input_ids: expected (B, L), got {tuple(ids.shape)}")
    ends = (ids == eos).long()
    return ends.cumsum(-1) - ends


def block_mask(doc: torch.Tensor, block: int) -> torch.Tensor:
    """(B, L) document ids -> (B, nb, nb) bool: causal blocks (i, j) holding a same-document
    pair; ids are non-decreasing, so an earlier block j shares one with i iff last_j >= first_i."""
    B, L = doc.shape
    nb = -(-L // block)
    starts = torch.arange(nb, device=doc.device) * block
    first = doc[:, starts]  # (B, nb)
    last = doc[:, (starts + block - 1).clamp_max(L - 1)]
    tril = torch.ones(nb, nb, dtype=torch.bool, device=doc.device).tril()
    return tril & (last[:, None, :] >= first[:, :, None])


def element_mask(doc: torch.Tensor) -> torch.Tensor:
    """(B, L) -> (B, L, L) bool: key <= query and the same document."""
    L = doc.shape[-1]
    causal = torch.ones(L, L, dtype=torch.bool, device=doc.device).tril()
    return causal & (doc[:, :, None] == doc[:, None, :])


class Docs:
    """The document structure of one packed batch, computed once and shared by every layer."""

    def __init__(self, ids: torch.Tensor, eos: int):
        self.ids = doc_ids(ids, eos)
        self._cache: dict = {}

    @property
    def shape(self):
        return self.ids.shape

    def mask(self) -> torch.Tensor:
        """(B, 1, L, L) bool element mask for SDPA / eager (computed once)."""
        if "mask" not in self._cache:
            self._cache["mask"] = element_mask(self.ids)[:, None]
        return self._cache["mask"]

    def blocks(self, block: int) -> torch.Tensor:
        if block not in self._cache:
            self._cache[block] = block_mask(self.ids, block)
        return self._cache[block]

    def spans(self) -> list[list[tuple[int, int]]]:
        """Per row, the (start, end) token ranges of its documents in order."""
        out = []
        for row in self.ids.tolist():
            cuts = [0] + [t for t in range(1, len(row)) if row[t] != row[t - 1]] + [len(row)]
            out.append(list(zip(cuts[:-1], cuts[1:], strict=True)))
        return out

    def density(self, block: int) -> float:
        """Document blocks / causal blocks: the structural density (1.0 for one document)."""
        b = self.blocks(block)
        nb = b.shape[-1]
        return float(b.sum()) / (b.shape[0] * nb * (nb + 1) // 2)

    def count(self) -> float:
        """Mean documents per row."""
        return float((self.ids[:, -1] + 1).float().mean())
