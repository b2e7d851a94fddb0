"""`benchlab prepare nanogpt --tokenizer NAME_OR_DIR` with a transformers tokenizer folder, and the
end-of-text id the bins are read with (meta.json's, or given; never a silent default).

    pytest tests/zoo/test_zoo_prepare.py -q
"""

import json

import pytest

from benchlab.core.errors import BenchlabError
from benchlab.zoo import cli, data

DOCS = ["The first document.\nIt has two lines.", "Zweites Dokument: café, £3 and 50%!",
        "def f(x):\n    return x * 2", "tiny", "A fifth one, the last of them all."]
SPECIALS = ["<pad>", "<|eos|>"]  # ids 0 and 1: the eos id is not 0, the zoo's EOT


def save_tokenizer(folder, eos: str | None = "<|eos|>"):
    """A tiny byte-level BPE (any text round-trips) as a transformers tokenizer folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(DOCS * 3, trainer=trainer)
    kw = {"eos_token": eos} if eos else {}
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", **kw)
    fast.save_pretrained(folder)
    return fast


def test_prepare_nanogpt_with_a_tokenizer_folder_round_trips(tmp_path):
    fast = save_tokenizer(tmp_path / "tok")
    assert fast.eos_token_id == 1
    src = tmp_path / "corpus.txt"
    src.write_text("<|endoftext|>".join(DOCS))
    out = tmp_path / "bins"
    assert cli.main(["nanogpt", str(src), str(out), "--tokenizer", str(tmp_path / "tok"),
                     "--val-fraction", "0.4"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["eot_id"] == fast.eos_token_id and meta["vocab_size"] == len(fast)
    assert meta["tokenizer"] == str(tmp_path / "tok")
    ds = data.read_nanogpt(out)  # the id from meta.json
    assert ds["eot_id"] == 1
    got = []
    for split in ("train", "val"):
        starts, ends = data.document_bounds(ds[split], ds["eot_id"])
        assert len(starts) == meta["documents"][split] > 0
        assert ds[split][-1] == 1  # eos after every document, the last included
        got += [fast.decode(ds[split][a:b].tolist(), clean_up_tokenization_spaces=False)
                for a, b in zip(starts, ends, strict=True)]
    assert sorted(got) == sorted(DOCS)


def test_prepare_nanogpt_zoo_byte_tokenizer_records_its_eot(tmp_path):
    src = tmp_path / "c.txt"
    src.write_text("one\n\ntwo\n\nthree")
    assert cli.main(["nanogpt", str(src), str(tmp_path / "b"), "--tokenizer", "byte"]) == 0
    ds = data.read_nanogpt(tmp_path / "b")
    assert ds["meta"]["tokenizer"] == "byte" and ds["eot_id"] == 256
    assert ds["meta"]["vocab_size"] == 258


def one_line(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text, text
    return text


def test_tokenizer_without_eos_or_too_large_is_one_line(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    src = tmp_path / "c.txt"
    src.write_text("one\n\ntwo")
    save_tokenizer(tmp_path / "noeos", eos=None)
    with pytest.raises(BenchlabError, match="no eos token") as e:
        cli.main(["nanogpt", str(src), str(tmp_path / "o1"), "--tokenizer",
                  str(tmp_path / "noeos")])
    one_line(e)
    vocab = {"<eos>": 0, "<unk>": 1, **{f"w{i}": i + 2 for i in range(70_000)}}
    big = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    big.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=big, eos_token="<eos>").save_pretrained(
        tmp_path / "big")
    with pytest.raises(BenchlabError, match=r"vocab_size: 70002: ids over 65535") as e:
        cli.main(["nanogpt", str(src), str(tmp_path / "o2"), "--tokenizer",
                  str(tmp_path / "big")])
    one_line(e)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_reading_bins_without_meta_json_is_one_line(tmp_path):
    data.write_bin(tmp_path / "train.bin", [5, 6, 0, 7, 0])
    data.write_bin(tmp_path / "val.bin", [5, 0])
    with pytest.raises(BenchlabError, match=r"meta\.json") as e:
        data.read_nanogpt(tmp_path)
    assert one_line(e).startswith(f"{tmp_path}: meta.json: ")
    assert data.read_nanogpt(tmp_path, eot_id=0)["eot_id"] == 0  # given explicitly: no meta
    (tmp_path / "meta.json").write_text(json.dumps({"vocab_size": 4096}))
    with pytest.raises(BenchlabError, match=r"meta\.json: eot_id: None") as e:
        data.read_nanogpt(tmp_path)
    one_line(e)
    (tmp_path / "meta.json").write_text(json.dumps({"vocab_size": 4096, "eot_id": 7}))
    assert data.read_nanogpt(tmp_path)["eot_id"] == 7
    assert data.read_nanogpt(tmp_path, eot_id=0)["eot_id"] == 0  # the explicit id wins
