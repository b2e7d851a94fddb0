"""Table IV through lm_eval: zoo_cloze accuracy agrees with log-likelihoods scored directly with
transformers; `lm-eval` writes its results JSON for a fine-tuned checkpoint; bad input is one
BenchlabError line."""

import json
import math
import sys
from pathlib import Path

import lm_eval
import numpy as np
import pytest
import torch
import transformers

from benchlab import zoo
from benchlab.core.errors import BenchlabError
from benchlab.long_exposure import accuracy, cli, trainer


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


def test_mcnemar_is_the_exact_binomial_test_on_discordant_items():
    from scipy.stats import binomtest

    rng = np.random.default_rng(0)
    for n, flip in ((60, 0.3), (25, 0.1), (9, 0.5)):
        a = rng.random(n) < 0.5
        b = np.where(rng.random(n) < flip, ~a, a)
        t = accuracy.mcnemar(a.astype(int).tolist(), b.astype(int).tolist())
        a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
        assert (t["a_only"], t["b_only"], t["n"]) == (a_only, b_only, n)
        assert t["both"] + t["neither"] + a_only + b_only == n
        assert t["p"] == pytest.approx(binomtest(a_only, a_only + b_only, 0.5).pvalue)
    assert accuracy.mcnemar([1, 0, 1], [1, 0, 1])["p"] == 1.0  # no discordant item
    with pytest.raises(BenchlabError, match="mcnemar: 3 items against 2"):
        accuracy.mcnemar([1, 0, 1], [1, 0])


def test_accuracy_command_evaluates_base_dense_and_le(tmp_path, monkeypatch):
    """`accuracy` fine-tunes dense and LE on the same rows and evaluates base, dense and LE
    through lm_eval: every checkpoint's per-item correctness equals log-likelihoods scored
    directly with transformers, McNemar's p equals scipy's binomial test on the discordant
    items, and a second run reuses every checkpoint and evaluation. (lr 0.05 for 3 steps moves
    the models enough that some items change: the paired test is not vacuous.)"""
    from scipy.stats import binomtest

    from benchlab.core.provenance import sha256_file

    out = tmp_path / "acc"
    argv = ["accuracy", "--seq-len", "128", "--steps", "3", "--lr", "0.05", "--records", "400",
            "--n-docs", "40", "--device", "cpu", "--work", str(tmp_path / "work"),
            "--out", str(out)]
    assert cli.main(argv) == 0
    result = json.loads((out / "accuracy.json").read_text())
    assert list(result["models"]) == ["base", "dense", "le"]
    assert sorted(p.name for p in out.iterdir()) == ["accuracy.json", "accuracy.md"]
    le = result["models"]["le"]
    assert le["provenance"]["mode"] == "le" and le["steps"] == 3
    assert 0 < le["densities"]["density_attn"] <= le["densities"]["density_doc"] <= 1
    assert le["densities"]["density_steps"] == 3
    assert result["lm_eval_version"] == lm_eval.__version__
    docs = accuracy.cloze_docs(40)
    correct = {}
    for mode, x in result["models"].items():
        preds = direct_choices(x["checkpoint"], docs)
        correct[mode] = [int(p == d["label"]) for p, d in zip(preds, docs, strict=True)]
        t = x["tasks"]["zoo_cloze"]
        assert t["n"] == 40 and t["predictions"] == preds and t["correct"] == correct[mode]
        assert t["acc"] == pytest.approx(np.mean(correct[mode]))
        assert x["sha256"] == sha256_file(Path(x["checkpoint"]) / "model.safetensors")
    assert len({x["sha256"] for x in result["models"].values()}) == 3
    md = (out / "accuracy.md").read_text()
    discordant = 0
    for a, b in accuracy.PAIRS:
        t = result["tests"]["zoo_cloze"][f"{a}_vs_{b}"]
        a_only = sum(x > y for x, y in zip(correct[a], correct[b], strict=True))
        b_only = sum(x < y for x, y in zip(correct[a], correct[b], strict=True))
        discordant += a_only + b_only
        assert (t["a_only"], t["b_only"]) == (a_only, b_only)
        p = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
        assert t["p"] == pytest.approx(p)
        verdict = ("no accuracy change shown at this scale" if p >= 0.05
                   else "an accuracy change shown")
        assert f"zoo_cloze, {a} vs {b}: right only in {a} {a_only}, " in md and verdict in md
    assert discordant > 0
    acc = le["tasks"]["zoo_cloze"]
    assert (f"| zoo_cloze | opt-tiny + lora | le | 3 | {acc['acc']:.3f} +- "
            f"{acc['acc_stderr']:.3f} | {le['densities']['density_attn']:.3f} /") in md

    def redo(*a, **k):
        raise AssertionError("a finished step was redone")

    monkeypatch.setattr(accuracy, "evaluate", redo)
    monkeypatch.setattr(trainer, "run", redo)
    monkeypatch.setattr(accuracy, "save_base", lambda model, d: d)  # must exist already
    assert cli.main(argv) == 0
    again = json.loads((out / "accuracy.json").read_text())
    assert again["models"] == result["models"] and again["tests"] == result["tests"]


def test_accuracy_bad_input_is_one_line(tmp_path):
    with pytest.raises(SystemExit):  # argparse: lm_eval's hf model cannot load adapters
        cli.main(["accuracy", "--method", "adapter", "--out", str(tmp_path / "a")])
    with pytest.raises(BenchlabError, match="--tasks: no task given"):
        cli.main(["accuracy", "--tasks", ",", "--out", str(tmp_path / "b")])
    assert not (tmp_path / "b").exists()
