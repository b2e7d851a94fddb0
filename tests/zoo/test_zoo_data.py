"""Real-data formats and `benchlab prepare`, on files the tests write.

    pytest tests/zoo/test_zoo_data.py -q
"""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchlab import zoo
from benchlab.core.errors import BenchlabError
from benchlab.zoo import cli, data


def brute_force_documents(tokens, eot):
    docs, cur = [], []
    for t in tokens:
        if t == eot:
            docs.append(cur)
            cur = []
        else:
            cur.append(t)
    if cur:
        docs.append(cur)
    return docs


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5), max_size=60))
def test_eot_indices_and_document_lengths_match_brute_force(tokens):
    arr = np.array(tokens, dtype=np.uint16)
    assert data.eot_indices(arr, 0, chunk=7).tolist() == [i for i, t in enumerate(tokens) if t == 0]
    expected = brute_force_documents(tokens, 0)
    assert data.document_lengths(arr, 0).tolist() == [len(d) for d in expected]
    starts, ends = data.document_bounds(arr, 0)
    assert [arr[a:b].tolist() for a, b in zip(starts, ends, strict=True)] == expected


def test_nanogpt_bins_round_trip_as_memmaps(tmp_path):
    tokens = np.array([5, 6, 0, 7, 0, 65535, 9, 0], dtype=np.uint16)
    data.write_bin(tmp_path / "train.bin", tokens)
    data.write_bin(tmp_path / "val.bin", tokens[:3])
    ds = data.read_nanogpt(tmp_path, eot_id=0)  # no meta.json: the id given explicitly
    assert isinstance(ds["train"], np.memmap) and ds["train"].dtype == np.uint16
    assert ds["train"].tolist() == tokens.tolist() and ds["meta"] == {} and ds["eot_id"] == 0
    assert data.document_lengths(ds["train"], 0).tolist() == [2, 1, 2]
    with pytest.raises(BenchlabError, match="tokens"):
        data.write_bin(tmp_path / "bad.bin", [70000])


def test_bad_bin_files_name_the_file(tmp_path):
    (tmp_path / "odd.bin").write_bytes(b"abc")
    with pytest.raises(BenchlabError, match=r"odd\.bin: size"):
        data.read_bin(tmp_path / "odd.bin")
    with pytest.raises(BenchlabError, match=r"missing\.bin: file"):
        data.read_bin(tmp_path / "missing.bin")


def test_cs336_npy_is_memory_mapped(tmp_path):
    data.write_npy(tmp_path / "tok.npy", np.arange(1000) % 300, dtype=np.int32)
    arr = data.read_npy(tmp_path / "tok.npy")
    assert isinstance(arr, np.memmap) and arr.dtype == np.int32 and arr[299] == 299
    np.save(tmp_path / "bad.npy", np.zeros((2, 3)))
    with pytest.raises(BenchlabError, match=r"bad\.npy: array"):
        data.read_npy(tmp_path / "bad.npy")


def test_jsonl_records_normalize_instruction_and_e2e_styles(tmp_path):
    rows = [
        {"instruction": "Add.", "input": "1 2", "output": "3"},
        {"instruction": "Say hi.", "output": "hi"},
        {"meaning_representation": "name[Aromi], food[Thai]", "human_reference": "Aromi is Thai."},
        {"mr": "name[X]", "ref": "X."},
        {"prompt": "Q", "completion": "A"},
        {"text": "plain"},
    ]
    data.write_jsonl(tmp_path / "r.jsonl", rows)
    assert data.read_records(tmp_path / "r.jsonl") == [
        data.Record("Add.\n\n1 2", "3"), data.Record("Say hi.", "hi"),
        data.Record("name[Aromi], food[Thai]", "Aromi is Thai."), data.Record("name[X]", "X."),
        data.Record("Q", "A"), data.Record("", "plain")]


def test_jsonl_errors_name_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": \n')
    with pytest.raises(BenchlabError, match=r"bad\.jsonl:2: json"):
        data.read_records(bad)
    bad.write_text('{"question": "a"}\n')
    with pytest.raises(BenchlabError, match=r"bad\.jsonl:1: keys"):
        data.read_records(bad)
    bad.write_text('{"instruction": "a", "output": 3}\n')
    with pytest.raises(BenchlabError, match=r"bad\.jsonl:1: output"):
        data.read_records(bad)


def test_random_batch_windows_are_slices_of_the_stream():
    stream = np.arange(1000, dtype=np.uint16)
    b = data.random_batch(stream, 4, 16, seed=3)
    assert b.shape == (4, 17) and b.dtype == torch.int64
    assert torch.equal(b, data.random_batch(stream, 4, 16, seed=3))
    assert (b[:, 1:] - b[:, :-1] == 1).all()  # contiguous windows
    fixed = data.fixed_batches(stream, 3, 2, 8, seed=0)
    assert fixed.shape == (3, 2, 9)
    with pytest.raises(BenchlabError, match="shorter"):
        data.random_batch(stream[:10], 1, 16, seed=0)


def test_prepare_nanogpt_from_text_round_trips_documents(tmp_path, capsys):
    docs = zoo.synthetic_documents(40, seed=9)
    src = tmp_path / "corpus.txt"
    src.write_text("<|endoftext|>".join(docs))  # contains EOT: split on it
    assert cli.main(["nanogpt", str(src), str(tmp_path / "out"), "--val-fraction", "0.25"]) == 0
    ds = data.read_nanogpt(tmp_path / "out")
    meta = ds["meta"]
    assert meta["vocab_size"] == zoo.VOCAB_SIZE and meta["tokenizer"] == "bpe"
    assert meta["eot_id"] == ds["eot_id"] == zoo.EOT_ID
    tok = zoo.tokenizer("bpe")
    got = []
    for split in ("train", "val"):
        starts, ends = data.document_bounds(ds[split], meta["eot_id"])
        assert len(starts) == meta["documents"][split] > 0
        got += [tok.decode(ds[split][a:b].tolist()) for a, b in zip(starts, ends, strict=True)]
    assert sorted(got) == sorted(d.strip() for d in docs)
    with pytest.raises(BenchlabError, match="exists"):  # never overwrite saved data
        cli.main(["nanogpt", str(src), str(tmp_path / "out")])


def test_prepare_npy_jsonl_and_synthetic(tmp_path):
    src = tmp_path / "prose.txt"
    src.write_text("First document.\n\nSecond one,\nwith two lines.\n\n\n")
    assert cli.main(["npy", str(src), str(tmp_path / "t.npy"), "--tokenizer", "byte"]) == 0
    arr = data.read_npy(tmp_path / "t.npy")
    assert data.document_lengths(arr, 256).tolist() == [15, len("Second one,\nwith two lines.")]
    assert cli.main(["jsonl", str(src), str(tmp_path / "r.jsonl")]) == 0
    assert [r.target for r in data.read_records(tmp_path / "r.jsonl")] == [
        "First document.", "Second one,\nwith two lines."]
    e2e = tmp_path / "e2e.jsonl"
    e2e.write_text(json.dumps({"mr": "name[X]", "ref": "X is here."}) + "\n")
    assert cli.main(["jsonl", str(e2e), str(tmp_path / "n.jsonl")]) == 0
    assert data.read_jsonl(tmp_path / "n.jsonl") == [{"prompt": "name[X]", "target": "X is here."}]
    assert cli.main(["nanogpt", "--synthetic", "30", str(tmp_path / "syn"), "--seed", "2"]) == 0
    meta = json.loads((tmp_path / "syn" / "meta.json").read_text())
    assert sum(meta["documents"].values()) == 30 and meta["lengths"]["documents"] == 30


def test_prepare_bad_input_is_one_line(tmp_path):
    with pytest.raises(BenchlabError, match=r"nope\.txt: input: no such file"):
        cli.main(["npy", str(tmp_path / "nope.txt"), str(tmp_path / "o.npy")])
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(BenchlabError, match=r"bin\.txt: encoding"):
        cli.main(["npy", str(tmp_path / "bin.txt"), str(tmp_path / "o.npy")])
    with pytest.raises(BenchlabError, match="not both"):
        cli.main(["nanogpt", "x.txt", str(tmp_path / "o"), "--synthetic", "3"])


E2E_TEXT = st.text(st.sampled_from('ab ,"\n£é[]'), min_size=1, max_size=12).filter(str.strip)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(E2E_TEXT, E2E_TEXT), min_size=1, max_size=6))
def test_e2e_csv_records_match_pandas(tmp_path_factory, pairs):
    import csv

    import pandas as pd

    path = tmp_path_factory.mktemp("csv") / "trainset.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:  # quoted like the E2E release
        w = csv.writer(f, quoting=csv.QUOTE_ALL)
        w.writerow(["mr", "ref"])
        w.writerows(pairs)
    ref = pd.read_csv(path, dtype=str, keep_default_na=False)  # an independent CSV parser
    want = [data.Record(m, r) for m, r in zip(ref["mr"], ref["ref"], strict=True)]
    assert data.read_records(path) == want == [data.Record(m, r) for m, r in pairs]


def test_e2e_csv_errors_name_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.csv"
    cases = [
        ('mr,ref\n"name[A]","A is."\n"name[B]"\n', r"bad\.csv:3: ref: 1 fields"),
        ('mr,ref\n"name[A], x","multi\nline"\n"name[B]",""\n', r"bad\.csv:4: ref: empty field"),
        ('mr,ref\n" ",B\n', r"bad\.csv:2: mr: empty field"),
        ('mr,ref\na,b,c\n', r"bad\.csv:2: columns: 3 fields"),
        ('mr,ref\n"a,b\n', r"bad\.csv:2: csv: unexpected end of data"),
        ('name,text\na,b\n', r"bad\.csv:1: header: \['name', 'text'\]"),
        ('', r"bad\.csv:1: header: none"),
    ]
    for text, pattern in cases:
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(BenchlabError, match=pattern) as e:
            data.read_records(bad)
        assert "\n" not in str(e.value)
    with pytest.raises(BenchlabError, match=r"missing\.csv: file"):
        data.read_records(tmp_path / "missing.csv")


def test_jsonl_errors_count_blank_lines(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"mr": "a", "ref": "b"}\n\n{"mr": "a"}\n')
    with pytest.raises(BenchlabError, match=r"bad\.jsonl:3: keys"):
        data.read_records(bad)


def test_pretokenized_rows_and_their_errors(tmp_path):
    path = tmp_path / "tok.jsonl"
    rows = [{"context": [5, 6], "completion": [7, 0]}, {"input_ids": [8], "labels": [1]},
            {"ids": [9, 10]}, {"tokens": [11]}]
    data.write_jsonl(path, rows)
    assert data.is_tokenized(path)
    assert data.read_token_docs(path, 12) == [[5, 6, 7, 0], [8], [9, 10], [11]]
    data.write_jsonl(tmp_path / "text.jsonl", [{"context": "name[A]", "completion": "A."}])
    assert not data.is_tokenized(tmp_path / "text.jsonl")
    assert data.read_records(tmp_path / "text.jsonl") == [data.Record("name[A]", "A.")]
    cases = [('{"ids": [1, 2]}\n\n{"ids": [3, 12]}\n', r"tok\.jsonl:3: ids: item 1: 12 is not"),
             ('{"ids": [1, -1]}\n', r"tok\.jsonl:1: ids: item 1: -1 is not"),
             ('{"ids": [1, 2.0]}\n', r"tok\.jsonl:1: ids: item 1: 2\.0 is not"),
             ('{"ids": [true]}\n', r"tok\.jsonl:1: ids: item 0: True is not"),
             ('{"ids": [1]}\n{"ids": "1 2"}\n', r"tok\.jsonl:2: ids: expected a list"),
             ('{"ids": [1]}\n{"context": [1]}\n', r"tok\.jsonl:2: keys: \['context'\]"),
             ('{"ids": []}\n', r"tok\.jsonl:1: ids: no token ids"),
             ('{"ids": [1]}\n{"ids": [1]\n', r"tok\.jsonl:2: json")]
    for text, pattern in cases:
        path.write_text(text)
        with pytest.raises(BenchlabError, match=pattern):
            data.read_token_docs(path, 12)
