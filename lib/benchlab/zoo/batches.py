"""Training windows from a token stream (nanoGPT's get_batch), seeded.

    python -c "from benchlab.zoo import batches, tokenize; \
print(batches.random_batch(tokenize.corpus_tokens(), 2, 8, seed=0))"
"""

import numpy as np
import torch

from ..core.errors import BenchlabError


def random_batch(tokens, batch_size: int, seq_len: int, *, seed=None, rng=None) -> torch.Tensor:
    """(batch_size, seq_len + 1) int64 windows at random offsets of a token stream (nanoGPT's
    get_batch): inputs are [:, :-1], targets [:, 1:]. Pass an np.random.Generator or a seed."""
    n = len(tokens)
    if n < seq_len + 2:
        raise BenchlabError(f"token stream: length {n}: shorter than seq_len + 2 = {seq_len + 2}")
    rng = rng if rng is not None else np.random.default_rng(seed)
    starts = rng.integers(0, n - seq_len - 1, size=batch_size)
    idx = starts[:, None] + np.arange(seq_len + 1)[None, :]
    return torch.from_numpy(np.asarray(tokens[idx], dtype=np.int64))


def fixed_batches(tokens, n_batches: int, batch_size: int, seq_len: int, seed=0) -> torch.Tensor:
    """(n_batches, batch_size, seq_len + 1): the same evaluation batches for the same seed."""
    rng = np.random.default_rng(seed)
    return torch.stack([random_batch(tokens, batch_size, seq_len, rng=rng)
                        for _ in range(n_batches)])


def token_batches(tokens, batch_size: int, seq_len: int, *, seed=0, steps=None):
    """Endless (or `steps`-long) iterator of random_batch windows from one seeded generator."""
    rng = np.random.default_rng(seed)
    i = 0
    while steps is None or i < steps:
        yield random_batch(tokens, batch_size, seq_len, rng=rng)
        i += 1


