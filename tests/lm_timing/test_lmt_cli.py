"""The seed-compatible commands: `benchlab lm-timing run` and `aggregate`.

    pytest tests/lm_timing/test_lmt_cli.py -q
"""

import json

import numpy as np
import pytest

from benchlab.cli import main as top_main
from benchlab.core import BenchlabError
from benchlab.lm_timing.cli import SEED_FIELDS, main

TINY = ["--model_size", "mini", "--vocab", "64", "--context_length", "16", "--d_model", "32",
        "--d_ff", "64", "--num_layers", "1", "--num_heads", "4", "--batch_size", "2",
        "--num_steps", "2", "--num_warmups", "2", "--num_trials", "3", "--device", "cpu"]


def run_json(tmp_path, *extra, name="r.json"):
    out = tmp_path / name
    assert main(["run", *TINY, *extra, "--output", str(out)]) == 0
    return json.loads(out.read_text())


def test_run_writes_the_seed_fields(tmp_path):
    res = run_json(tmp_path)
    assert set(SEED_FIELDS) <= set(res)
    assert res["forward_only"] is False and res["mode"] == "forward_backward"
    assert len(res["trial_times_ms"]) == 3 and len(res["warmup_times_ms"]) == 2
    assert res["mean_time_ms"] == pytest.approx(np.mean(res["trial_times_ms"]))
    assert res["std_time_ms"] == pytest.approx(np.std(res["trial_times_ms"], ddof=1))
    # a trial is num_steps steps; the per-step mean is half of it
    assert res["mean_step_time_ms"] == pytest.approx(res["mean_time_ms"] / 2)
    assert res["num_params"] == 2 * 64 * 32 + (4 * 32 * 32 + 3 * 32 * 64 + 2 * 32) + 32
    assert res["device"] == "cpu" and res["status"] == "ok" and 0 < res["mfu"]


def test_forward_only_and_known_size_defaults(tmp_path):
    args = ["run", "--model_size", "tiny", "--vocab", "100", "--context_length", "16",
            "--num_warmups", "0", "--num_trials", "1", "--forward_only", "--device", "cpu",
            "--output", str(tmp_path / "f.json")]
    assert main(args) == 0
    res = json.loads((tmp_path / "f.json").read_text())
    assert res["forward_only"] is True and res["d_model"] == 128 and res["num_layers"] == 2
    assert res["warmup_times_ms"] == [] and res["first_step_ms"] > 0


def test_run_reads_npy_tokens_memory_mapped(tmp_path):
    from benchlab.zoo.data import write_npy

    write_npy(tmp_path / "tok.npy", np.arange(5000) % 64)
    res = run_json(tmp_path, "--data_path", str(tmp_path / "tok.npy"))
    assert res["data_path"].endswith("tok.npy") and res["status"] == "ok"


def test_run_refuses_tokens_beyond_vocab(tmp_path):
    from benchlab.zoo.data import write_npy

    write_npy(tmp_path / "tok.npy", np.full(500, 1000))
    with pytest.raises(BenchlabError, match="vocab"):
        run_json(tmp_path, "--data_path", str(tmp_path / "tok.npy"))


def test_run_never_overwrites_and_top_cli_reports_one_line(tmp_path, capsys):
    out = tmp_path / "r.json"
    out.write_text("{}")
    assert top_main(["lm-timing", "run", *TINY, "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and str(out) in err and len(err.splitlines()) == 1
    assert out.read_text() == "{}"


def test_unknown_size_needs_dims(tmp_path):
    with pytest.raises(BenchlabError, match="d_model"):
        main(["run", "--model_size", "huge", "--context_length", "8", "--output",
              str(tmp_path / "x.json")])


def test_oom_is_a_result_not_a_crash(tmp_path):
    args = ["run", "--model_size", "2.7B", "--context_length", "65536", "--batch_size", "64",
            "--num_trials", "1", "--device", "cpu", "--output", str(tmp_path / "o.json")]
    assert main(args) == 0
    res = json.loads((tmp_path / "o.json").read_text())
    assert res["status"] == "oom" and res["trial_times_ms"] == [] and "OOM" in res["reason"]


def fake(size, ctx, fwd, mean, d_model=768):
    return {"model_size": size, "vocab": 10000, "context_length": ctx, "d_model": d_model,
            "d_ff": 4 * d_model, "num_layers": 12, "num_heads": 12, "batch_size": 4,
            "num_steps": 1, "num_warmups": 5, "num_trials": 2, "forward_only": fwd,
            "trial_times_ms": [mean - 1, mean + 1], "mean_time_ms": mean,
            "std_time_ms": 1.414, "device": "cpu"}


def test_aggregate_has_the_seed_sections(tmp_path):
    d = tmp_path / "results"
    d.mkdir()
    rows = [fake("small", 128, True, 100.0), fake("small", 128, False, 310.0),
            fake("medium", 128, True, 200.0, 1024), fake("small", 256, False, 600.0)]
    for i, r in enumerate(rows):
        (d / f"bench_{i}.json").write_text(json.dumps(r))
    out, csv = tmp_path / "summary.md", tmp_path / "results.csv"
    assert main(["aggregate", "--results-dir", str(d), "--output", str(out), "--csv",
                 str(csv)]) == 0
    text = out.read_text()
    for section in ("## Complete Results", "## Results by Model Size", "### Model: small",
                    "### Model: medium", "## Forward-only vs Forward+Backward"):
        assert section in text
    assert text.index("### Model: small") < text.index("### Model: medium")
    fb = text.split("## Forward-only vs Forward+Backward")[1]
    assert "210.00" in fb and "2.10" in fb  # backward = 310 - 100, ratio 2.1
    assert len(csv.read_text().strip().splitlines()) == 1 + len(rows)
    with pytest.raises(BenchlabError, match="already exists"):
        main(["aggregate", "--results-dir", str(d), "--output", str(out)])


def test_aggregate_names_file_and_field(tmp_path):
    d = tmp_path / "results"
    d.mkdir()
    bad = fake("small", 128, True, 1.0)
    del bad["mean_time_ms"]
    (d / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(BenchlabError, match=r"bad\.json: mean_time_ms: missing"):
        main(["aggregate", "--results-dir", str(d), "--output", str(tmp_path / "s.md")])
    (d / "bad.json").write_text("{not json")
    with pytest.raises(BenchlabError, match=r"bad\.json: not valid JSON"):
        main(["aggregate", "--results-dir", str(d), "--output", str(tmp_path / "s.md")])
