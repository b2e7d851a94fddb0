"""Text: pydoc prose, the synthetic grammar (deterministic, Zipfian, varied lengths), tokenizers.

    pytest tests/zoo/test_zoo_text.py -q -s     # -s prints the document-length distribution
"""

import collections
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from benchlab import zoo
from benchlab.core.errors import BenchlabError
from benchlab.zoo import tokenize


def test_pydoc_text_is_english_prose():
    text = zoo.pydoc_text()
    assert len(text) > 300_000
    words = collections.Counter(text.lower().split())
    assert words.most_common(1)[0][0] == "the"


def test_synthetic_documents_are_deterministic_per_seed():
    a, b, c = (zoo.synthetic_documents(300, seed=s) for s in (5, 5, 6))
    assert a == b
    assert a != c
    assert len(a) == 300 and all(isinstance(d, str) and d.strip() for d in a)
    assert len(set(a)) == len(a)  # no repeated documents


def test_synthetic_document_lengths_are_varied_and_reported(capsys):
    docs = zoo.synthetic_documents(5000, seed=0)
    s = zoo.length_stats(docs)
    with capsys.disabled():
        print("\nsynthetic document lengths (5000 docs, seed 0):", json.dumps(s))
    lengths = np.array([len(d.split()) for d in docs])
    assert s["documents"] == 5000 and s["words_median"] == np.median(lengths)
    assert s["words_mean"] > s["words_median"]  # right-skewed, like web text
    assert s["words_p90"] > 4 * s["words_p10"]
    assert s["words_max"] > 10 * s["words_median"]
    assert s["words_min"] >= 5  # a title and at least one sentence
    # every document: a title line, a blank line, sentences ending in punctuation
    for d in docs[:200]:
        title, body = d.split("\n\n", 1)
        assert title.istitle() and body.rstrip()[-1] in ".?!"


def test_synthetic_lexicon_is_zipfian():
    docs = zoo.synthetic_documents(3000, seed=2)
    counts = collections.Counter(w.strip(".,?!").lower() for d in docs for w in d.split())
    freq = np.array(sorted(counts.values(), reverse=True), dtype=float)
    ranks = np.arange(1, len(freq) + 1)
    fit = stats.linregress(np.log(ranks[10:1000]), np.log(freq[10:1000]))
    print(f"rank-frequency slope {fit.slope:.2f} (r = {fit.rvalue:.3f})")
    assert -1.6 < fit.slope < -0.7 and fit.rvalue < -0.97
    assert len(counts) > 3000  # a large open vocabulary


def test_bpe_tokenizer_round_trips_and_has_the_spec_vocab():
    tok = zoo.tokenizer("bpe")
    assert tok.vocab_size == zoo.VOCAB_SIZE
    assert (tok.eot_id, tok.pad_id) == (zoo.EOT_ID, zoo.PAD_ID)
    sample = zoo.pydoc_text()[:5000] + " ünïcode ✓ 漢字\n"
    ids = tok.encode(sample)
    assert tok.decode(ids) == sample
    assert len(ids) < len(sample.encode()) / 2.5  # it compresses the corpus' own text
    assert tok.to_transformers()(["a b"]).input_ids == [tok.encode("a b")]


def test_bpe_training_rebuilds_the_pinned_tokenizer():
    from benchlab.zoo import manifest

    cached = json.loads(manifest.path(manifest.TOKENIZER).read_text())
    fresh = json.loads(tokenize._train_bpe().to_str())
    assert fresh["model"]["merges"] == cached["model"]["merges"]
    assert fresh["model"]["vocab"] == cached["model"]["vocab"]


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=200))
def test_byte_tokenizer_round_trips(text):
    tok = zoo.tokenizer("byte")
    ids = tok.encode(text)
    assert max(ids, default=0) < 256 and tok.decode(ids) == text


def test_encode_documents_ends_each_document_with_eot():
    docs = zoo.synthetic_documents(20, seed=1)
    for kind in ("bpe", "byte"):
        tok = zoo.tokenizer(kind)
        stream = zoo.encode_documents(docs, kind)
        assert stream.dtype == np.uint16 and stream[-1] == tok.eot_id
        assert int((stream == tok.eot_id).sum()) == len(docs)
        pieces = np.split(stream, np.flatnonzero(stream == tok.eot_id) + 1)[:-1]
        assert [tok.decode(p[:-1].tolist()) for p in pieces] == docs


def test_corpus_splits_are_disjoint():
    train, val = zoo.corpus_documents("train"), zoo.corpus_documents("val")
    assert not set(train) & set(val)
    assert len(train) > 5 * len(val) > 0
    with pytest.raises(BenchlabError, match="split"):
        zoo.corpus_documents("test")
    with pytest.raises(BenchlabError, match="kind"):
        zoo.tokenizer("wordpiece")
