"""Unigram and bigram count models fitted on the training split, coded and bounded like a trained
run (the same documents, smoothing grid and bound).

    python -c "from benchlab import sublora as sl; from benchlab.sublora.sweep import run_point; \
c = sl.CONFIGS['tiny']; print(run_point(c, sl.SweepCase('u', 1000, 'unigram', 0.5, 42)))"

- The model: counts from the first `bounds.ngram_docs` training documents, each read as the
  model reads it ([EOT] + doc: the first target's context is EOT).
  unigram (add-one): p(b) = (c(b) + 1) / (N + V).
  bigram (interpolated absolute discounting, Kneser-Ney style, D = `bounds.ngram_discount`):
  p(b | a) = max(c(a, b) - D, 0) / c(a) + D N1+(a .) / c(a) * q(b), with the add-one continuation
  q(b) = (N1+(. b) + 1) / (N1+(. .) + V); an unseen context a gets q. Both sum to 1 over V.
- The message: the count table (D, V and the smoothing are hyperparameters, paid by
  `extra_bits`) in Elias-gamma integers: unigram: gamma(c(b) + 1) for b = 0..V-1; bigram: per
  context a, gamma(k_a + 1) (its number of successors), then per successor gamma(gap) (b -
  previous b, from -1) and gamma(c(a, b)). L = its length in bits.
- The bound: bounds.bounds_metrics with that L, as evaluate.eval_bounds does for a trained run.
"""

import functools
import time
from dataclasses import dataclass

import numpy as np
import torch

from . import bounds
from .data import Corpus, sample_documents

ORDERS = {"unigram": 1, "bigram": 2}


@dataclass(frozen=True)
class TableMessage:
    """The message of a count table: its Elias-gamma code (bits) and size facts."""
    code_bits: int
    n_entries: int      # nonzero counts sent
    order: int

    @property
    def bits(self) -> int:
        return self.code_bits


# -- Elias gamma ---------------------------------------------------------------------------------

def gamma_bits(n: int) -> list[int]:
    """Elias-gamma code of n >= 1: (bit_length - 1) zeros, then n in binary."""
    if n < 1:
        raise ValueError(f"gamma code needs n >= 1, got {n}")
    width = int(n).bit_length()
    return [0] * (width - 1) + [(n >> (width - 1 - i)) & 1 for i in range(width)]


def gamma_length(n) -> np.ndarray:
    """Length of gamma(n) in bits, elementwise: 2 floor(log2 n) + 1."""
    n = np.asarray(n, dtype=np.int64)
    return 2 * (np.floor(np.log2(n)).astype(np.int64)) + 1


class _Reader:
    def __init__(self, bits):
        self.bits, self.pos = bits, 0

    def gamma(self) -> int:
        zeros = 0
        while self.bits[self.pos] == 0:
            zeros += 1
            self.pos += 1
        value = 0
        for _ in range(zeros + 1):
            value = 2 * value + int(self.bits[self.pos])
            self.pos += 1
        return value


# -- the count table -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Table:
    """Counts of one order: unigram `counts` (V,); bigram `pairs` (n, 3) rows (a, b, c(a, b)),
    sorted by (a, b)."""
    order: int
    vocab_size: int
    counts: np.ndarray | None = None
    pairs: np.ndarray | None = None


def fit(docs, order: int, vocab_size: int, eot: int) -> Table:
    """The count table of `docs` (token arrays ending with EOT), each read as [EOT] + doc."""
    if order == 1:
        counts = np.zeros(vocab_size, dtype=np.int64)
        for d in docs:
            counts += np.bincount(d, minlength=vocab_size)
        return Table(1, vocab_size, counts=counts)
    keys = np.concatenate([np.concatenate([[eot], d[:-1]]) * vocab_size + d for d in docs])
    uniq, c = np.unique(keys, return_counts=True)
    pairs = np.stack([uniq // vocab_size, uniq % vocab_size, c], axis=1).astype(np.int64)
    return Table(2, vocab_size, pairs=pairs)


def encode_table(t: Table) -> np.ndarray:
    """The table's message as 0/1 bits (layout: the module docstring)."""
    out: list[int] = []
    if t.order == 1:
        for c in t.counts.tolist():
            out += gamma_bits(c + 1)
        return np.asarray(out, dtype=np.uint8)
    a, b, c = t.pairs.T
    starts = np.searchsorted(a, np.arange(t.vocab_size + 1))
    for ctx in range(t.vocab_size):
        lo, hi = int(starts[ctx]), int(starts[ctx + 1])
        out += gamma_bits(hi - lo + 1)
        prev = -1
        for j in range(lo, hi):
            out += gamma_bits(int(b[j]) - prev) + gamma_bits(int(c[j]))
            prev = int(b[j])
    return np.asarray(out, dtype=np.uint8)


def decode_table(bits, order: int, vocab_size: int) -> Table:
    """Inverse of `encode_table`."""
    r = _Reader(np.asarray(bits, dtype=np.uint8))
    if order == 1:
        return Table(1, vocab_size, counts=np.array([r.gamma() - 1 for _ in range(vocab_size)],
                                                    dtype=np.int64))
    rows = []
    for ctx in range(vocab_size):
        prev = -1
        for _ in range(r.gamma() - 1):
            prev += r.gamma()
            rows.append((ctx, prev, r.gamma()))
    return Table(2, vocab_size, pairs=np.asarray(rows, dtype=np.int64).reshape(-1, 3))


def message(t: Table, *, verify: bool = True) -> TableMessage:
    """The table's message length; with `verify`, decoded back and checked (as bounds.compress)."""
    bits = encode_table(t)
    if verify:
        back = decode_table(bits, t.order, t.vocab_size)
        same = (np.array_equal(back.counts, t.counts) if t.order == 1
                else np.array_equal(back.pairs, t.pairs))
        if not same:
            raise AssertionError("count table did not decode to its input")
    n = int((t.counts > 0).sum()) if t.order == 1 else len(t.pairs)
    return TableMessage(code_bits=int(bits.size), n_entries=n, order=t.order)


# -- probabilities -------------------------------------------------------------------------------

class Model:
    """p(. | context) of a table: `probs(contexts)` -> (T, V) rows that sum to 1."""

    def __init__(self, t: Table, discount: float = 0.75):
        V = t.vocab_size
        self.table, self.V, self.discount = t, V, float(discount)
        if t.order == 1:
            self.unigram = (t.counts + 1.0) / (t.counts.sum() + V)
            return
        a, b, c = t.pairs.T
        self.starts = np.searchsorted(a, np.arange(V + 1))
        self.ctx_total = np.bincount(a, weights=c, minlength=V)       # c(a)
        self.ctx_types = np.bincount(a, minlength=V)                  # N1+(a .)
        cont = np.bincount(b, minlength=V).astype(float)              # N1+(. b)
        self.cont = (cont + 1.0) / (cont.sum() + V)                   # q(b)

    def probs(self, contexts) -> np.ndarray:
        contexts = np.asarray(contexts, dtype=np.int64)
        if self.table.order == 1:
            return np.broadcast_to(self.unigram, (len(contexts), self.V)).copy()
        _, b, c = self.table.pairs.T
        out = np.empty((len(contexts), self.V))
        for i, ctx in enumerate(contexts.tolist()):
            total = self.ctx_total[ctx]
            if total == 0:
                out[i] = self.cont
                continue
            lo, hi = self.starts[ctx], self.starts[ctx + 1]
            out[i] = self.discount * self.ctx_types[ctx] / total * self.cont
            out[i, b[lo:hi]] += np.maximum(c[lo:hi] - self.discount, 0.0) / total
        return out


@functools.lru_cache(maxsize=8)
def _fitted(corpus: Corpus, order: int, n_docs: int) -> Table:
    docs = [corpus.train.document(i) for i in range(min(n_docs, corpus.m))]
    return fit(docs, order, corpus.vocab_size, corpus.eot)


def eval_ngram(corpus: Corpus, cfg, mode: str) -> dict:
    """bounds_metrics of the `mode` ("unigram" | "bigram") model, plus fit_seconds and
    eval_seconds."""
    b = cfg.bounds
    t0 = time.perf_counter()
    table = _fitted(corpus, ORDERS[mode], b.ngram_docs)
    fitted = time.perf_counter()
    msg = message(table)
    model = Model(table, b.ngram_discount)
    docs = sample_documents(corpus.m, b.bound_samples, b.sample_seed)
    acc = bounds.DocumentRisks(corpus.vocab_size, b.alphas, b.topk)
    for i in docs:
        doc = corpus.train.document(int(i))[: b.max_doc_tokens]
        ctx = np.concatenate([[corpus.eot], doc[:-1]])
        logp = torch.from_numpy(np.log(model.probs(ctx)))
        acc.add(*bounds.target_stats(logp, torch.from_numpy(doc)))
    info = {"mode": mode, "order": table.order, "ngram_docs": b.ngram_docs,
            "discount": b.ngram_discount, "corpus": corpus.source, "sample_seed": b.sample_seed,
            "max_doc_tokens": b.max_doc_tokens, "doc_tokens": acc.n_tokens}
    metrics = bounds.bounds_metrics(msg, acc.risks(), alphas=b.alphas,
                                    vocab_size=corpus.vocab_size, m=corpus.m, s=len(docs),
                                    extra_bits=b.misc_extra_bits, eps=b.eps,
                                    topk_errors=acc.topk_errors(), raw_bpd=acc.raw_bpd(),
                                    grid_in_sample_term=b.grid_in_sample_term, inputs=info)
    metrics.update(fit_seconds=fitted - t0, eval_seconds=time.perf_counter() - fitted)
    return metrics
