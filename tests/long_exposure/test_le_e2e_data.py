"""setups.data_rows: every supported data file becomes rows packed as finetune.packed_rows packs.

    pytest tests/long_exposure/test_le_e2e_data.py -q
"""

import csv

import pytest
import torch

from benchlab.core.errors import BenchlabError
from benchlab.long_exposure import e2e, setups
from benchlab.long_exposure import finetune as ft
from benchlab.zoo import data

MODEL = "opt-tiny"


@pytest.fixture(scope="module")
def tok():
    return ft.tokenizer_for(MODEL)


def by_hand(docs, seq_len, eos):
    stream = []
    for doc in docs:
        stream += doc + [eos]
    n = len(stream) // seq_len
    return [stream[i * seq_len:(i + 1) * seq_len] for i in range(n)]


def test_text_jsonl_and_e2e_csv_pack_like_packed_rows(tmp_path, tok):
    recs = e2e.e2e_records(40, seed=5)
    jsonl = e2e.write_e2e_jsonl(tmp_path / "e2e.jsonl", 40, seed=5)
    with open(tmp_path / "trainset.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL)
        w.writerow(["mr", "ref"])
        w.writerows([r["meaning_representation"], r["human_reference"]] for r in recs)
    want = ft.packed_rows(recs, tok, 64)
    texts = [ft.encode(tok, e2e.record_text(r)) for r in recs]
    assert want.tolist() == by_hand(texts, 64, ft.eos_id(tok))
    assert setups.data_rows(jsonl, MODEL, 64).tolist() == want.tolist()
    assert setups.data_rows(tmp_path / "trainset.csv", MODEL, 64).tolist() == want.tolist()


def test_pretokenized_jsonl_is_packed_without_retokenizing(tmp_path, tok):
    eos = ft.eos_id(tok)
    docs = [ft.encode(tok, e2e.record_text(r)) for r in e2e.e2e_records(30, seed=1)]
    rows = [{"context": d[:3], "completion": d[3:] + ([eos] if i % 2 else [])}
            for i, d in enumerate(docs[:10])]  # the artifact's lines, some ending with eos
    rows += [{"input_ids": d, "labels": d} for d in docs[10:20]]
    rows += [{"ids": d} for d in docs[20:]]
    path = data.write_jsonl(tmp_path / "valid_opt.jsonl", rows)
    got = setups.data_rows(path, MODEL, 32)
    assert got.dtype == torch.long and got.shape[1] == 32
    assert got.tolist() == by_hand(docs, 32, eos)  # one eos after every document, no padding


def test_bad_data_files_name_file_and_line(tmp_path, tok):
    path = tmp_path / "tok.jsonl"
    path.write_text(f'{{"input_ids": [5, 6]}}\n{{"input_ids": [7, {tok.vocab_size}]}}\n')
    with pytest.raises(BenchlabError, match=rf"tok\.jsonl:2: input_ids: item 1: {tok.vocab_size}"):
        setups.data_rows(path, MODEL, 4)
    path.write_text('{"input_ids": [5, 6]}\n')
    with pytest.raises(BenchlabError, match=r"tok\.jsonl: records: 3 tokens, fewer than one row"):
        setups.data_rows(path, MODEL, 4)
    bad = tmp_path / "trainset.csv"
    bad.write_text('mr,ref\n"name[A]",\n')
    with pytest.raises(BenchlabError, match=r"trainset\.csv:2: ref: empty field"):
        setups.data_rows(bad, MODEL, 4)
