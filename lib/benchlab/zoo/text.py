"""Embedded text: CPython's pydoc prose and a seeded synthetic document generator.

    python -c "from benchlab import zoo; print(zoo.synthetic_documents(2, seed=0)[0][:300])"
    python -c "from benchlab import zoo; print(zoo.length_stats(zoo.synthetic_documents(10000)))"

The generator is a small probabilistic grammar (sentence templates over parts of speech) with a
Zipfian lexicon per part of speech and a per-document topic that shifts which nouns are frequent.
Documents have a title, paragraphs, and a log-normal number of sentences, so lengths are
right-skewed like web text. Everything is vectorized with numpy: 100k documents in a few seconds.
"""

import functools

import numpy as np

from ..core.errors import BenchlabError

# ---- the "language": fixed, independent of the document seed ----
_CLOSED = {
    "DET": "the a this that every some each no one another".split(),
    "PRON": "it they we he she you".split(),
    "PREP": ("of in on with from under over between through across after before without "
             "within during against toward into").split(),
    "CONJ": "and but because while although so whereas".split(),
}
_OPEN = {"NOUN": 3000, "VERB": 1500, "ADJ": 1200, "ADV": 300}  # pseudo-word counts
_SUFFIX = {"NOUN": ["", "", "", "ion", "er", "ity", "ment"], "VERB": ["s", "ed", "es", "ated"],
           "ADJ": ["", "al", "ous", "ic", "ive"], "ADV": ["ly"]}
_PUNCT = [".", ".", ".", ".", ".", ".", "?", "!"]  # sentence ends, weighted by repetition
_TEMPLATES = [  # (weight, slots); "END" is sentence-final punctuation
    (5, "DET ADJ NOUN VERB DET NOUN END"),
    (4, "DET NOUN VERB PREP DET ADJ NOUN END"),
    (3, "PRON VERB DET NOUN CONJ PRON VERB ADV END"),
    (3, "DET NOUN PREP DET NOUN VERB ADV END"),
    (2, "ADV , DET NOUN VERB DET NOUN PREP DET NOUN END"),
    (2, "PRON ADV VERB DET ADJ NOUN , CONJ DET NOUN VERB END"),
    (1, "DET ADJ ADJ NOUN VERB END"),
    (1, "PREP DET NOUN , PRON VERB DET NOUN PREP DET ADJ NOUN END"),
]
_TITLE = "ADJ NOUN PREP DET NOUN"
ZIPF_EXPONENT = 1.1


def pydoc_text() -> str:
    """CPython's pydoc_data.topics prose (about 0.5 MB of English), topics in sorted order."""
    return "\n\n".join(pydoc_documents())


def pydoc_documents() -> list[str]:
    """One document per pydoc topic, sorted by topic name: CPython 3.11.7's, frozen in the pinned
    corpus (zoo.manifest) so that the text does not change with the Python version."""
    return list(_pinned()["pydoc"])


def live_pydoc_documents() -> list[str]:
    """The running Python's own pydoc topics (what `benchlab zoo pin --corpus` freezes)."""
    from pydoc_data.topics import topics

    return [topics[k].strip() for k in sorted(topics)]


@functools.cache
def _pinned() -> dict:
    import json
    import lzma

    from . import manifest

    path = manifest.path(manifest.CORPUS)
    return json.loads(lzma.decompress(path.read_bytes()))


def _pseudo_words(rng: np.random.Generator, n: int, suffixes: list[str]) -> list[str]:
    onsets = "b c d f g h j k l m n p r s t v w z br cl dr fl gr pl pr sh st th tr".split()
    vowels = "a e i o u ai ea io ou".split()
    codas = ["", "", "n", "r", "s", "t", "l", "m", "nd", "st"]
    words, seen = [], set()
    while len(words) < n:
        k = int(rng.integers(1, 4))  # syllables
        w = "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(k))
        w += rng.choice(suffixes)
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


@functools.cache
def _language():
    """Lexicon entries (bytes), per-POS entry ranges and Zipf CDFs, templates as slot arrays."""
    rng = np.random.default_rng(20231123)  # the language never changes with the document seed
    pos_words = dict(_CLOSED)
    for pos, n in _OPEN.items():
        pos_words[pos] = _pseudo_words(rng, n, _SUFFIX[pos])
    entries, ranges, probs = [], {}, {}
    for pos, words in pos_words.items():
        ranges[pos] = (len(entries), len(words))
        entries += words
        if pos in _OPEN:  # Zipfian ranks
            p = np.arange(1, len(words) + 1, dtype=np.float64) ** -ZIPF_EXPONENT
        else:  # closed classes: uniform
            p = np.ones(len(words))
        probs[pos] = p / p.sum()
    n_lower = len(entries)
    entries += [w.capitalize() for w in entries]  # entry i + n_lower: capitalized variant
    ranges["END"] = (len(entries), len(_PUNCT))
    entries += _PUNCT
    ranges[","] = (len(entries), 1)
    entries += [","]
    seps = ["", " ", "\n\n"]  # what follows an entry: 3 variants of every entry
    joined = np.array([e + sp for e in entries for sp in seps], dtype=object)
    joined_lens = np.array([len(e) for e in joined], dtype=np.int64)
    pos_names = list(ranges)
    probs["END"], probs[","] = np.full(len(_PUNCT), 1 / len(_PUNCT)), np.ones(1)
    cdf = np.concatenate([i + np.cumsum(probs[name]) for i, name in enumerate(pos_names)])
    cdf_entry = np.concatenate([ranges[name][0] + np.arange(ranges[name][1])
                                for name in pos_names])
    slots = [np.array([pos_names.index(t) for t in tpl.split()]) for _, tpl in _TEMPLATES]
    title = np.array([pos_names.index(t) for t in _TITLE.split()])
    return dict(joined=joined, joined_lens=joined_lens, ranges=ranges, cdf=cdf,
                cdf_entry=cdf_entry, n_lower=n_lower,
                pos_names=pos_names, slots=[title] + slots,
                weights=np.array([w for w, _ in _TEMPLATES], dtype=np.float64))


def _ragged_gather(values: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Concatenate values[starts[i] : starts[i] + lens[i]] for all i, without a Python loop."""
    total = int(lens.sum())
    out_starts = np.cumsum(lens) - lens
    idx = np.arange(total) - np.repeat(out_starts - starts, lens)
    return values[idx]


def synthetic_documents(n: int, seed: int = 0, mean_sentences: float = 12.0) -> list[str]:
    """`n` seeded documents of the zoo grammar; the same (n, seed) gives the same documents.

    Sentences per document are 1 + log-normal (median ~ 0.65 x mean, long right tail, capped at
    40 x mean), so document lengths vary from one line to several thousand words.
    """
    if n <= 0:
        return []
    lang = _language()
    rng = np.random.default_rng([seed, 7])
    sigma = 0.9
    mu = np.log(mean_sentences) - sigma**2 / 2
    n_sent = 1 + np.minimum(rng.lognormal(mu, sigma, n), 40 * mean_sentences).astype(np.int64)
    n_sent[:] = n_sent + 1  # + the title
    total_sent = int(n_sent.sum())
    doc_of_sent = np.repeat(np.arange(n), n_sent)
    first = np.cumsum(n_sent) - n_sent  # index of each document's title
    n_tpl = len(lang["weights"])
    tpl = 1 + rng.choice(n_tpl, size=total_sent, p=lang["weights"] / lang["weights"].sum())
    tpl[first] = 0
    tpl_lens = np.array([len(s) for s in lang["slots"]])
    tpl_starts = np.concatenate([[0], np.cumsum(tpl_lens)[:-1]])
    all_slots = np.concatenate(lang["slots"])
    sent_lens = tpl_lens[tpl]
    pos = _ragged_gather(all_slots, tpl_starts[tpl], sent_lens)  # (tokens,) POS index
    sent_of_tok = np.repeat(np.arange(total_sent), sent_lens)
    tok_first = np.cumsum(sent_lens) - sent_lens
    # one searchsorted for every slot: POS p's CDF lives in [p, p + 1] of lang["cdf"]
    j = np.searchsorted(lang["cdf"], pos + rng.random(len(pos)), side="right")
    ids = lang["cdf_entry"][np.minimum(j, len(lang["cdf"]) - 1)]
    topic = rng.integers(0, _OPEN["NOUN"], size=n)  # per-document shift of the noun ranking
    base, size = lang["ranges"]["NOUN"]
    nouns = np.flatnonzero(pos == lang["pos_names"].index("NOUN"))
    on_topic = nouns[rng.random(len(nouns)) < 0.5]  # half of the nouns follow the topic
    shift = topic[doc_of_sent[sent_of_tok[on_topic]]]
    ids[on_topic] = base + (ids[on_topic] - base + shift) % size
    ids[tok_first] += np.where(ids[tok_first] < lang["n_lower"], lang["n_lower"], 0)  # Capital
    is_title = np.zeros(total_sent, dtype=bool)
    is_title[first] = True
    title_toks = is_title[sent_of_tok]
    ids[title_toks & (ids < lang["n_lower"])] += lang["n_lower"]  # Title Case
    # separator after each token: none before punctuation, paragraph breaks after some sentences
    nxt_punct = np.zeros(len(ids), dtype=bool)
    end_base = lang["ranges"]["END"][0]
    nxt_punct[:-1] = ids[1:] >= end_base
    sep = np.where(nxt_punct, 0, 1)
    sent_last = tok_first + sent_lens - 1
    para = rng.random(total_sent) < 0.25
    para[first] = True  # a blank line after the title
    sep[sent_last] = np.where(para, 2, 1)
    doc_last = sent_last[np.cumsum(n_sent) - 1]
    sep[doc_last] = 0
    stream = ids * 3 + sep  # entry i followed by separator j is table entry 3 i + j
    lens = lang["joined_lens"][stream]
    text = "".join(lang["joined"][stream].tolist())
    # document boundaries in characters
    tok_per_doc = np.bincount(doc_of_sent, weights=sent_lens, minlength=n).astype(np.int64)
    doc_end = np.cumsum(lens)[np.cumsum(tok_per_doc) - 1]
    doc_start = np.concatenate([[0], doc_end[:-1]])
    return [text[a:b] for a, b in zip(doc_start.tolist(), doc_end.tolist(), strict=True)]


def length_stats(documents: list[str]) -> dict:
    """Document-length distribution in words and characters: count, mean, quantiles, max."""
    words = np.array([len(d.split()) for d in documents], dtype=np.float64)
    chars = np.array([len(d) for d in documents], dtype=np.float64)
    out = {"documents": len(documents)}
    for unit, x in (("words", words), ("chars", chars)):
        if not len(x):
            continue
        q = np.quantile(x, [0.1, 0.5, 0.9, 0.99])
        out.update({f"{unit}_mean": float(x.mean()), f"{unit}_p10": float(q[0]),
                    f"{unit}_median": float(q[1]), f"{unit}_p90": float(q[2]),
                    f"{unit}_p99": float(q[3]), f"{unit}_min": float(x.min()),
                    f"{unit}_max": float(x.max())})
    return out


CORPUS_SYNTHETIC = {"train": (6000, 0), "val": (600, 1)}  # split -> (documents, seed)


def build_corpus() -> dict:
    """The corpus as pinned: the running Python's pydoc topics (every 8th held out for "val")
    plus synthetic documents (train: 6000 with seed 0, val: 600 with seed 1)."""
    pydoc = live_pydoc_documents()
    out = {"pydoc": pydoc}
    for split, (n, seed) in CORPUS_SYNTHETIC.items():
        real = [d for i, d in enumerate(pydoc) if (i % 8 == 7) == (split == "val")]
        out[split] = real + synthetic_documents(n, seed=seed)
    return out


def corpus_documents(split: str = "train") -> list[str]:
    """A split of the pinned corpus (build_corpus, zoo.manifest): the tiny models and the BPE are
    trained on it."""
    if split not in CORPUS_SYNTHETIC:
        raise BenchlabError(f"corpus split {split!r}: expected 'train' or 'val'")
    return list(_pinned()[split])
