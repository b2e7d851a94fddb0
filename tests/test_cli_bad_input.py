"""Hostile input to every experiment's commands (issue 16, lists 8-10): each bad value exits
non-zero with its last stderr line naming the option or file, never a traceback, and leaves
the working folder as it was. The core's own commands are fuzzed in tests/core."""

import json
from pathlib import Path

import numpy as np
import pytest

from benchlab.cli import main
from benchlab.layer_selection import data as ls_data

SCORES = ls_data.shared_dir() / "scores" / "opt125m_scores.json"


def cases(tmp, *items) -> Path:
    path = tmp / "cases.json"
    path.write_text(json.dumps({"cases": list(items)}))
    return path


def ls_run(tmp, *items, extra=(), out="out"):
    return ["layer-selection", "run", "--scores", SCORES, "--cases", cases(tmp, *items),
            "--output-dir", tmp / out, "--skip_scalability", *extra]


def a_file(tmp) -> str:
    (tmp / "f").write_text("x")
    return "f"


def corrupt_model(tmp) -> Path:
    from benchlab.zoo import models

    d = tmp / "model"
    models.hf_config("opt-tiny").save_pretrained(d)
    (d / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    return d


def negative_tokens(tmp) -> Path:
    np.save(tmp / "tokens.npy", np.array([-3, 5, 7] * 100, dtype=np.int64))
    return tmp / "tokens.npy"


def corrupt_state(tmp) -> Path:
    (tmp / "le").mkdir()
    (tmp / "le" / "train_state.pt").write_bytes(b"PK\x03\x04garbage")
    return tmp / "le"


B = [1e7, 1e7, 1e7]
LMT = ["lm-timing", "run", "--model_size", "tiny", "--context_length", "16", "--output", "r.json"]
# (id, argv from tmp, text the last stderr line must contain)
CASES = [
    ("ls-zero-budgets", lambda t: ls_run(t, {"case_id": 1, "budgets": [0, 0, 0]}), "budgets"),
    ("ls-empty-budgets", lambda t: ls_run(t, {"case_id": 1, "budgets": []}), "budgets"),
    ("ls-bool-budgets", lambda t: ls_run(t, {"case_id": 1, "budgets": [True, True]}), "budgets"),
    *[(f"ls-case-id-{v!r}", lambda t, v=v: ls_run(t, {"case_id": v, "budgets": B}), "case_id")
      for v in ("abc", None, -5, 2**40, 1.5, True)],
    ("ls-duplicate-ids", lambda t: ls_run(t, {"case_id": 1, "budgets": B},
                                          {"case_id": 1, "budgets": B}), "repeats"),
    ("ls-output-dir-file", lambda t: ls_run(t, {"case_id": 1, "budgets": B}, out=a_file(t)),
     "--output-dir"),
    ("ls-model-name-escape", lambda t: ls_run(t, {"case_id": 1, "budgets": B},
                                              extra=["--model-name", "../../x"]), "--model-name"),
    ("ls-extract-corrupt", lambda t: ["layer-selection", "extract-norms", "--model",
                                      corrupt_model(t), "--output", t / "n.json"], "model"),
    ("ls-sparsity-nan", lambda t: ["layer-selection", "extract-scores", "--model", "opt-tiny",
                                   "--output", t / "s.json", "--sparsity", "nan"], "--sparsity"),
    ("ls-sparsity-neg", lambda t: ["layer-selection", "extract-scores", "--model", "opt-tiny",
                                   "--output", t / "s.json", "--sparsity", "-1"], "--sparsity"),
    ("ls-sparsity-zero", lambda t: ["layer-selection", "extract-scores", "--model", "opt-tiny",
                                    "--output", t / "s.json", "--sparsity", "0"], "--sparsity"),
    ("lmt-heads-0", lambda t: LMT + ["--num_heads", "0"], "--num_heads"),
    ("lmt-heads-3", lambda t: LMT + ["--num_heads", "3", "--d_model", "128"], "--num_heads"),
    ("lmt-d-ff", lambda t: LMT + ["--d_ff", "-4"], "--d_ff"),
    ("lmt-device", lambda t: LMT + ["--device", "tpu"], "--device"),
    ("lmt-negative-ids", lambda t: LMT + ["--data_path", negative_tokens(t), "--num_warmups",
                                          "0", "--num_trials", "1"], "negative id"),
    ("prepare-synthetic-neg", lambda t: ["prepare", "nanogpt", "--synthetic", "-5", t / "ng"],
     "--synthetic"),
    ("prepare-val-fraction", lambda t: ["prepare", "nanogpt", "--synthetic", "4",
                                        "--val-fraction", "2", t / "ng"], "--val-fraction"),
    ("sublora-batch-0", lambda t: ["sublora", "train", "--data.batch_size=0",
                                   f"--login.out_dir={t}/sl"], "data.batch_size"),
    ("sublora-lr-nan", lambda t: ["sublora", "train", "--optimizer.learning_rate=nan",
                                  f"--login.out_dir={t}/sl"], "learning_rate"),
    ("le-resume-corrupt", lambda t: ["long-exposure", "finetune", "--steps", "2", "--records",
                                     "20", "--resume", "--out", corrupt_state(t)], "train_state"),
    ("le-density", lambda t: ["long-exposure", "model-step", "--density", "1.5"], "--density"),
    ("moe-prompts-neg", lambda t: ["moe-routing", "run", "--prompts-per-category", "-2",
                                   "--output", t / "moe"], "--prompts-per-category"),
    ("moe-prompts-0", lambda t: ["moe-routing", "run", "--prompts-per-category", "0",
                                 "--output", t / "moe"], "--prompts-per-category"),
    ("moe-report-missing", lambda t: ["moe-routing", "report", t / "none.jsonl"], "no such file"),
]


@pytest.mark.parametrize("build, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(tmp_path, capsys, monkeypatch, build, needle):
    monkeypatch.chdir(tmp_path)
    argv = [str(a) for a in build(tmp_path)]
    if str(SCORES) in argv and not SCORES.exists():
        pytest.skip(f"shared layer-selection data absent ({SCORES})")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's usage error
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code not in (0, None), err
    assert err and "Traceback" not in "\n".join(err)
    assert needle in err[-1] and ("error" in err[-1]), err[-1]
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before, sorted(set(after) ^ set(before))
