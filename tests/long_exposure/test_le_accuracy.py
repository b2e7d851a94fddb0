"""Table IV through lm_eval: zoo_cloze accuracy agrees with log-likelihoods scored directly with
transformers; `lm-eval` writes its results JSON for a fine-tuned checkpoint; bad input is one
BenchlabError line."""

import json
import math
import sys

import lm_eval
import pytest
import torch
import transformers

from benchlab import zoo
from benchlab.core.errors import BenchlabError
from benchlab.long_exposure import accuracy, cli


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """The pinned opt-tiny with the zoo tokenizer, as save_pretrained writes them."""
    path = tmp_path_factory.mktemp("base") / "model"
    zoo.trained("opt-tiny").save_pretrained(path)
    zoo.tokenizer().to_transformers().save_pretrained(path)
    return path


def direct_choices(model_dir, docs):
    """Argmax over choices of sum log p(" " + choice | context), scored with transformers."""
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    preds = []
    for d in docs:
        ctx = tok(d["context"])["input_ids"]
        scores = []
        for choice in d["choices"]:
            cont = tok(" " + choice)["input_ids"]
            assert tok(d["context"] + " " + choice)["input_ids"] == ctx + cont  # a clean split
            ids = torch.tensor([ctx + cont])
            with torch.no_grad():
                logp = model(ids).logits[0, -len(cont) - 1:-1].log_softmax(-1)
            scores.append(float(logp[torch.arange(len(cont)), ids[0, -len(cont):]].sum()))
        preds.append(max(range(len(scores)), key=scores.__getitem__))
    return preds


def test_cloze_docs_continue_real_text():
    docs = accuracy.cloze_docs(30, seed=3)
    assert docs == accuracy.cloze_docs(30, seed=3) and docs != accuracy.cloze_docs(30, seed=4)
    text = [" ".join(d.split()) for d in zoo.corpus_documents("val")]
    for d in docs:
        assert len(d["choices"]) == 4 and len(set(d["choices"])) == 4
        assert any(d["context"] + " " + d["choices"][d["label"]] in t for t in text)
    assert len({d["label"] for d in docs}) == 4  # the gold position varies


def test_lm_eval_matches_direct_loglikelihoods(base_dir, tmp_path):
    n = 40
    result = accuracy.evaluate(base_dir, ["zoo_cloze"], limit=n, task_dir=tmp_path)
    r = result["tasks"]["zoo_cloze"]
    lines = (tmp_path / "zoo_cloze.jsonl").read_text().splitlines()[:n]
    docs = [json.loads(line) for line in lines]
    preds = direct_choices(base_dir, docs)
    assert r["n"] == n and r["targets"] == [d["label"] for d in docs]
    assert r["predictions"] == preds
    acc = sum(p == d["label"] for p, d in zip(preds, docs, strict=True)) / n
    assert r["acc"] == pytest.approx(acc)
    assert r["acc_stderr"] == pytest.approx(math.sqrt(acc * (1 - acc) / (n - 1)))
    assert result["lm_eval_version"] == lm_eval.__version__


def test_cli_writes_results_json(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(["finetune", "--model", "opt-tiny", "--method", "lora", "--mode", "dense",
                     "--seq-len", "128", "--steps", "2", "--records", "400",
                     "--out", str(run)]) == 0
    ckpt, out = run / "checkpoint", tmp_path / "acc.json"
    assert cli.main(["lm-eval", "--checkpoint", str(ckpt), "--limit", "8", "--n-docs", "20",
                     "--device", "cpu", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    result = json.loads(out.read_text())
    r = result["tasks"]["zoo_cloze"]
    assert r["n"] == 8 and 0 <= r["acc"] <= 1 and r["acc_stderr"] > 0
    assert result["provenance"] == json.loads((ckpt / "benchlab_finetune.json").read_text())
    assert result["provenance"]["steps"] == 2
    assert result["lm_eval_version"] == lm_eval.__version__


def test_bad_input_is_one_line(base_dir, tmp_path, monkeypatch, capsys):
    with pytest.raises(BenchlabError, match="config.json"):
        cli.main(["lm-eval", "--checkpoint", str(tmp_path / "missing")])
    with pytest.raises(BenchlabError, match="unknown task 'no_such_task'"):
        cli.main(["lm-eval", "--checkpoint", str(base_dir), "--tasks", "zoo_cloze,no_such_task"])
    with pytest.raises(BenchlabError, match="n: 0"):
        accuracy.cloze_docs(0)
    assert cli.main(["lm-eval", "--checkpoint", str(base_dir), "--tasks", "piqa,copa",
                     "--print-command"]) == 0
    assert "--tasks piqa,copa" in capsys.readouterr().out
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # as if not installed
    with pytest.raises(BenchlabError, match="lm_eval: not installed"):
        accuracy.evaluate(base_dir, ["zoo_cloze"])
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "config.json").write_text("{}")
    (adapter / "benchlab_finetune.json").write_text('{"method": "adapter"}')
    with pytest.raises(BenchlabError, match="method: adapter"):
        cli.main(["lm-eval", "--checkpoint", str(adapter)])
