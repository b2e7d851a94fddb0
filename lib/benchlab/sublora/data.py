"""Training documents for SubLoRA: a nanoGPT bin directory, or the zoo's synthetic documents.

    python -c "from benchlab.sublora.data import SyntheticSplit; s = SyntheticSplit(300000, 2); \
print(s.m, s.document(12345)[:20])"

A split has m documents (the bound's sample size), `document(i)` (tokens ending with EOT) and
`window(...)` (a training window of a random draw).
- `BinSplit`: nanoGPT `train.bin` / `val.bin` (uint16, EOT after each document) with the seed's
  `eot_indices.npy`; windows start anywhere.
- `SyntheticSplit`: document i is one zoo synthetic document (seeded by i) in the zoo BPE plus
  EOT, made only when touched, so m can be 300,000 at no cost. The zoo's models and BPE saw seeds
  0 and 1, so corpus seed 2 keeps the prior independent of the bound's documents. A window starts
  at a uniform position of a uniform document and runs on across EOTs, as nanoGPT's do.
"""

import functools
from pathlib import Path

import numpy as np
import torch

from ..core.errors import BenchlabError, fail
from .projectors import derive_seed


class BinSplit:
    def __init__(self, tokens: np.ndarray, eot: int, eot_indices: np.ndarray | None = None):
        from ..zoo.data import eot_indices as find_eots

        self.tokens = tokens
        if eot_indices is None:
            eot_indices = find_eots(tokens, eot)
        self.ends = np.asarray(eot_indices, dtype=np.int64) + 1  # exclusive end of each doc
        self.m = int(self.ends.size)

    def document(self, i: int) -> np.ndarray:
        start = int(self.ends[i - 1]) if i else 0
        return np.asarray(self.tokens[start:int(self.ends[i])], dtype=np.int64)

    def window(self, a: int, u: float, block: int) -> np.ndarray:
        off = a % (len(self.tokens) - block - 1)
        return np.asarray(self.tokens[off:off + block + 1], dtype=np.int64)


class SyntheticSplit:
    def __init__(self, m: int, seed: int):
        self.m, self.seed = int(m), int(seed)

    def document(self, i: int) -> np.ndarray:
        if not 0 <= i < self.m:
            raise IndexError(f"document {i} of {self.m}")
        return _synthetic_doc(self.seed, int(i))

    def window(self, a: int, u: float, block: int) -> np.ndarray:
        i = a % self.m
        doc = self.document(i)
        parts, have = [doc[int(u * len(doc)):]], len(doc) - int(u * len(doc))
        while have < block + 1:
            i = (i + 1) % self.m
            parts.append(self.document(i))
            have += len(parts[-1])
        return np.concatenate(parts)[: block + 1]


@functools.lru_cache(maxsize=65536)
def _synthetic_doc(seed: int, i: int) -> np.ndarray:
    from ..zoo import EOT_ID, synthetic_documents
    from ..zoo.tokenize import tokenizer

    text = synthetic_documents(1, seed=derive_seed(seed, "doc", i) % 2**32)[0]
    ids = tokenizer("bpe").encode(text) + [EOT_ID]
    return np.asarray(ids, dtype=np.int64)


class Corpus:
    """train / val splits plus the vocabulary facts the bound needs."""

    def __init__(self, train, val, vocab_size: int, eot: int, source: str):
        self.train, self.val = train, val
        self.vocab_size, self.eot, self.source = vocab_size, eot, source

    @property
    def m(self) -> int:
        return self.train.m


@functools.lru_cache(maxsize=8)
def _load(dataset_dir: str, eot_file: str, n_docs: int, n_val: int, seed: int,
          eot_token: int = -1) -> Corpus:
    from ..zoo import EOT_ID, VOCAB_SIZE

    if not dataset_dir:
        return Corpus(SyntheticSplit(n_docs, seed), SyntheticSplit(n_val, seed + 1),
                      VOCAB_SIZE, EOT_ID, f"zoo-synthetic(m={n_docs}, seed={seed})")
    from ..zoo.data import read_nanogpt

    if bins_missing(dataset_dir):
        raise BenchlabError(bins_missing(dataset_dir))
    root = Path(dataset_dir)
    # train.bin, val.bin + meta.json from `benchlab prepare` (its eot_id unless data.eot_token)
    bins = read_nanogpt(root, eot_token if eot_token >= 0 else None,
                        explicit="set data.eot_token=ID")
    eot = bins["eot_id"]
    vocab = bins["meta"].get("vocab_size", VOCAB_SIZE)
    eot_path = Path(eot_file) if eot_file else root / "eot_indices.npy"
    eots = np.load(eot_path, allow_pickle=False) if eot_path.exists() else None
    train = BinSplit(bins["train"], eot, eots)
    if train.m == 0:
        raise fail(str(root / "train.bin"), "data.dataset_dir", "no EOT: no documents to bound")
    return Corpus(train, BinSplit(bins["val"], eot), vocab, eot, f"nanogpt-bins({root})")


def bins_missing(dataset_dir: str) -> str | None:
    """Why `dataset_dir` (data.dataset_dir: a nanoGPT bins folder, relative to the working
    directory; "" = the zoo synthetic corpus) cannot be read, else None."""
    if not dataset_dir:
        return None
    root = Path(dataset_dir)
    absent = [n for n in ("train.bin", "val.bin") if not (root / n).is_file()]
    if not absent:
        return None
    return (f"{root}: data.dataset_dir: no {' or '.join(absent)} (nanoGPT bins: `benchlab "
            "prepare`; point the study at them with --data.dataset_dir=DIR or the override "
            "data.dataset_dir=DIR, or '' for the zoo synthetic corpus)")


def load_corpus(cfg) -> Corpus:
    """The corpus a RunConfig names (cached per process: runs of a sweep share documents)."""
    d = cfg.data
    return _load(d.dataset_dir, d.openwebtext_train_eot_indices_file, d.n_documents,
                 d.n_val_documents, d.corpus_seed, d.eot_token)


def get_batch(split, *, seed: int, step: int, micro: int = 0, batch: int, block: int,
              rank: int = 0, world: int = 1, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Rows [rank B, (rank+1) B) of the global batch of world x B windows drawn for
    (seed, step, micro). Returns x, y: (B, block) int64, y = x shifted by one."""
    rng = np.random.default_rng([seed % 2**63, step, micro])
    a = rng.integers(0, 2**62, size=world * batch)
    u = rng.random(world * batch)
    rows = [split.window(int(a[k]), float(u[k]), block)
            for k in range(rank * batch, (rank + 1) * batch)]
    xy = torch.from_numpy(np.stack(rows))
    return xy[:, :-1].to(device), xy[:, 1:].to(device)


def sample_documents(m: int, s: int, seed: int) -> np.ndarray:
    """s distinct document indices of m, uniform, sorted (chosen independently of training)."""
    if s > m:
        raise ValueError(f"cannot sample s={s} of m={m} documents")
    return np.sort(np.random.default_rng([seed, 11]).choice(m, size=s, replace=False))
