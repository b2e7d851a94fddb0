"""Bad input to `benchlab lm-timing run` and `sweep` (issue 36): each exits non-zero with one
stderr line naming the file or option (and field), no traceback, and leaves every file that was
there byte for byte as it was, writing nothing new.

    pytest tests/lm_timing/test_lmt_cli_input.py -q
"""

import json
import subprocess

import numpy as np
import pytest

from benchlab.cli import main as top_main

RUN = ["lm-timing", "run", "--model_size", "mini", "--vocab", "64", "--context_length", "16",
       "--d_model", "32", "--d_ff", "64", "--num_layers", "1", "--num_heads", "4",
       "--batch_size", "2", "--num_warmups", "0", "--num_trials", "1", "--device", "cpu"]
SWEEP = ["lm-timing", "sweep", "--sizes", "mini", "--contexts", "8", "--d_model", "16",
         "--d_ff", "32", "--num_layers", "1", "--num_heads", "2", "--vocab", "32",
         "--num_warmups", "0", "--num_trials", "1", "--device", "cpu", "--forward_only"]


def files(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def refused(argv, root, capsys) -> str:
    """Run the top-level CLI; assert the refusal (non-zero, one line, no traceback, no file
    touched) and return its line."""
    before = files(root)
    try:
        code = top_main([str(a) for a in argv])
    except SystemExit as e:  # argparse's own usage errors
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code not in (0, None), err
    assert len(err) == 1 and "Traceback" not in err[0] and "error" in err[0], err
    assert files(root) == before
    return err[0]


def seed_result(size="mini", ctx=8, **extra):
    """A finished result of the sweep's own shape (what `lm-timing run` writes)."""
    return {"model_size": size, "vocab": 32, "context_length": ctx, "d_model": 16, "d_ff": 32,
            "num_layers": 1, "num_heads": 2, "batch_size": 4, "num_steps": 1, "num_warmups": 0,
            "num_trials": 1, "forward_only": True, "trial_times_ms": [1.0],
            "mean_time_ms": 1.0, "std_time_ms": 0.0, "device": "cpu", **extra}


MALFORMED = {
    "truncated": ('{"model_size": "mini", "context_', "not valid JSON"),
    "empty": ("", "not valid JSON"),
    "a list": ("[1, 2]", "top level"),
    "no mean time": (json.dumps({k: v for k, v in seed_result().items()
                                 if k != "mean_time_ms"}), "mean_time_ms"),
    "text time": (json.dumps(seed_result(mean_time_ms="fast")), "mean_time_ms"),
    "another context": (json.dumps(seed_result(ctx=16)), "context_length"),
    "another size": (json.dumps(seed_result(size="small")), "model_size"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_sweep_refuses_a_malformed_result_instead_of_skipping_it(tmp_path, capsys, monkeypatch,
                                                                name):
    text, field = MALFORMED[name]
    d = tmp_path / "results"
    d.mkdir()
    (d / "bench_mini_8.json").write_text(text)
    ran = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: ran.append(cmd))
    line = refused([*SWEEP, "--contexts", "8", "16", "--results-dir", d], tmp_path, capsys)
    assert "bench_mini_8.json" in line and field in line and "not a finished result" in line
    assert ran == []  # refused before any run, the other context included


def test_sweep_resumes_a_finished_result(tmp_path, monkeypatch):
    d = tmp_path / "results"
    d.mkdir()
    (d / "bench_mini_8.json").write_text(json.dumps(seed_result()))
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: pytest.fail(f"reran {cmd}"))
    assert top_main([*SWEEP, "--results-dir", str(d)]) == 0


@pytest.mark.parametrize("label", ["a/b", "../up", "/abs", "x\\y", ""])
def test_size_label_with_a_folder_is_refused(tmp_path, capsys, monkeypatch, label):
    monkeypatch.chdir(tmp_path)
    line = refused([*RUN, "--model_size", label, "--output", "r.json"], tmp_path, capsys)
    assert "--model_size" in line
    line = refused([*SWEEP, "--sizes", "mini", label, "--results-dir", "res"], tmp_path, capsys)
    assert "--sizes" in line and not (tmp_path / "res").exists()


def tokens(path, kind):
    """A .npy file whose content is wrong in one way; the field its error names."""
    if kind == "negative":
        np.save(path, np.array([-3, 5, 7] * 100, dtype=np.int64))
    elif kind == "beyond vocab":
        np.save(path, np.full(500, 1000, dtype=np.int64))
    elif kind == "too short":
        np.save(path, np.arange(10, dtype=np.int64))
    elif kind == "2-d":
        np.save(path, np.zeros((50, 50), dtype=np.int64))
    elif kind == "floats":
        np.save(path, np.zeros(500, dtype=np.float32))
    elif kind == "not npy":
        path.write_bytes(b"\x93NUMPY garbage")
    return {"negative": "tokens", "beyond vocab": "tokens", "too short": "tokens"}.get(kind,
                                                                                      "array")


@pytest.mark.parametrize("kind", ["negative", "beyond vocab", "too short", "2-d", "floats",
                                  "not npy"])
def test_data_path_content_errors_name_the_file_and_field(tmp_path, capsys, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "tok.npy"
    field = tokens(path, kind)
    line = refused([*RUN, "--data_path", path, "--output", "r.json"], tmp_path, capsys)
    assert f"{path}: {field}:" in line, line


def test_data_path_errors_in_a_fresh_process(tmp_path):
    """The same through `python -m benchlab.cli`: exit 2, one stderr line, nothing written."""
    import sys

    tokens(tmp_path / "tok.npy", "negative")
    before = files(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "benchlab.cli", *RUN, "--data_path",
                           str(tmp_path / "tok.npy"), "--output", str(tmp_path / "r.json")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and "Traceback" not in proc.stderr, err
    assert f"{tmp_path / 'tok.npy'}: tokens: negative id -3" in err[0]
    assert files(tmp_path) == before
