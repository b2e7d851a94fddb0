"""The seed-compatible commands: `benchlab lm-timing run` and `aggregate`.

    pytest tests/lm_timing/test_lmt_cli.py -q
"""

import json

import numpy as np
import pytest

from benchlab.cli import main as top_main
from benchlab.core import BenchlabError
from benchlab.core.results import load_records
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


def test_run_leaves_a_store_that_compare_reads(tmp_path):
    """Each run appends its record (Run.record) to store.jsonl beside its JSON; the JSON is a view
    of the record; two runs of one configuration compare case by case, nothing moved."""
    from benchlab.core.compare import compare

    stores = []
    for name in ("a", "b"):
        res = run_json(tmp_path / name)
        stores.append(load_records(tmp_path / name / "store.jsonl"))
        (record,) = stores[-1]
        m = record["metrics"]
        assert record["case"] == "step[mini-ctx16-fwd_bwd-fp32]" and record["kind"] == "step"
        assert record["config"]["dims"] == {"d_model": 32, "d_ff": 64, "num_layers": 1,
                                            "num_heads": 4}
        assert record["config"]["num_steps"] == 2 and record["run"]["device"] == "cpu"
        assert (res["num_params"], res["flops_per_step"]) == (m["num_params"], m["flops"])
        assert res["trial_times_ms"] == m["per_trial_times_ms"]
        assert res["mean_step_time_ms"] == m["mean_ms"] and m["rounds_timed"] == 3
    rows, compared = compare(*stores)
    assert rows == [] and compared >= 4  # status, num_params, flops, loss


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


def write_rows(d, rows):
    d.mkdir()
    for i, r in enumerate(rows):
        (d / f"bench_{i}.json").write_text(json.dumps(r))


def test_aggregate_pairs_only_equal_configs_per_step(tmp_path):
    """Batch 4 and batch 8 of one label stay apart (no cross-join); per-step times divide by
    num_steps; integer counts print as integers; an OOM row shows OOM and its num_params."""
    rows = [fake("small", 128, True, 100.0), fake("small", 128, False, 300.0),
            {**fake("small", 128, True, 180.0), "batch_size": 8},
            {**fake("small", 128, False, 540.0), "batch_size": 8},
            {**fake("small", 256, True, 1000.0), "num_steps": 10},
            {**fake("small", 256, False, 3000.0), "num_steps": 10},
            {**fake("medium", 1024, False, 0.0, 1024), "status": "oom", "mean_time_ms": None,
             "std_time_ms": None, "trial_times_ms": []}]
    d = tmp_path / "results"
    write_rows(d, rows)
    out, csv = tmp_path / "s.md", tmp_path / "s.csv"
    assert main(["aggregate", "--results-dir", str(d), "--output", str(out), "--csv",
                 str(csv)]) == 0
    fb = out.read_text().split("## Forward-only vs Forward+Backward")[1]
    head = [c.strip() for c in fb.split("\n| model_size")[1].split("\n")[0].split("|")[1:-1]]
    head = ["model_size", *head]
    lines = [line for line in fb.splitlines() if line.startswith("| small")]
    assert len(lines) == 3  # one pair per (batch, steps) config, not 4 cross-joined rows
    cells = [dict(zip(head, [c.strip() for c in line.strip("|").split("|")], strict=True))
             for line in lines]
    by_batch = {(c["batch_size"], c["num_steps"]): list(c.values()) for c in cells}
    assert by_batch[("4", "1")][-3:] == ["300.00", "200.00", "2.00"]
    assert by_batch[("8", "1")][-3:] == ["540.00", "360.00", "2.00"]
    assert by_batch[("4", "10")][-4:] == ["100.00", "300.00", "200.00", "2.00"]  # per step
    complete = out.read_text().split("## Complete Results")[1].split("##")[0]
    oom = next(line for line in complete.splitlines() if "| medium" in line)
    d_, f_, L = 1024, 4096, 12
    params = 2 * 10000 * d_ + L * (4 * d_ * d_ + 3 * d_ * f_ + 2 * d_) + d_
    assert "| OOM " in oom and f"| {params} " in oom and ".00" not in oom.split("OOM")[0]
    assert "3084928.00" not in out.read_text() and "| 768 " in complete
    import pandas as pd

    frame = pd.read_csv(csv)
    assert frame["num_params"].tolist()[-1] == params and len(frame) == len(rows)


def test_aggregate_bad_input_one_line(tmp_path, capsys):
    d = tmp_path / "empty"
    d.mkdir()
    assert top_main(["lm-timing", "aggregate", "--results-dir", str(d), "--output",
                     str(tmp_path / "s.md")]) == 2
    assert "--results-dir: no *.json results" in capsys.readouterr().err
    write_rows(tmp_path / "r", [{**fake("small", 128, True, 1.0), "context_length": "long"}])
    (tmp_path / "s.md").write_text("saved")
    assert top_main(["lm-timing", "aggregate", "--results-dir", str(tmp_path / "r"),
                     "--output", str(tmp_path / "s.md"), "--force"]) == 2
    err = capsys.readouterr().err.strip()
    assert "bench_0.json: context_length: not an integer ('long')" in err and "\n" not in err
    assert (tmp_path / "s.md").read_text() == "saved"


def test_oom_json_has_num_params_and_2_7B_spelling(tmp_path):
    args = ["run", "--model_size", "2_7B", "--context_length", "65536", "--batch_size", "64",
            "--num_trials", "1", "--device", "cpu", "--output", str(tmp_path / "o.json")]
    assert main(args) == 0
    res = json.loads((tmp_path / "o.json").read_text())
    d, f, L = 2560, 10240, 32  # the 2.7B row: d_model, d_ff, layers
    assert res["status"] == "oom" and res["d_model"] == d and res["num_layers"] == L
    assert res["num_params"] == 2 * 10000 * d + L * (4 * d * d + 3 * d * f + 2 * d) + d


def test_sweep_writes_seed_files_and_resumes(tmp_path):
    d = tmp_path / "results"
    argv = ["lm-timing", "sweep", "--sizes", "mini", "--contexts", "8", "16", "--d_model",
            "16", "--d_ff", "32", "--num_layers", "1", "--num_heads", "2", "--vocab", "32",
            "--num_warmups", "0", "--num_trials", "2", "--device", "cpu", "--forward_only",
            "--results-dir", str(d)]
    assert top_main(argv) == 0
    names = sorted(p.name for p in d.iterdir())
    assert names == ["bench_mini_16.json", "bench_mini_8.json", "store.jsonl"]
    first = json.loads((d / "bench_mini_8.json").read_text())
    assert first["forward_only"] is True and first["num_trials"] == 2 and first["d_model"] == 16
    records = load_records(d / "store.jsonl")  # one record per run, in the results dir's store
    assert sorted(r["case"] for r in records) == ["step[mini-ctx16-fwd-fp32]",
                                                  "step[mini-ctx8-fwd-fp32]"]
    before = {n: (d / n).read_text() for n in names}
    assert top_main(argv) == 0  # resumed: nothing rerun
    assert {n: (d / n).read_text() for n in names} == before
    # aggregate reads the records: the same tables without the JSON files
    out = tmp_path / "s.md"
    assert top_main(["lm-timing", "aggregate", "--results-dir", str(d), "--output",
                     str(out)]) == 0
    for n in names[:2]:
        (d / n).unlink()
    assert top_main(["lm-timing", "aggregate", "--results-dir", str(d), "--output",
                     str(tmp_path / "t.md")]) == 0
    assert (tmp_path / "t.md").read_text() == out.read_text()
    (d / "seed.json").write_text(json.dumps(fake("small", 128, True, 100.0)))  # no record
    assert top_main(["lm-timing", "aggregate", "--results-dir", str(d), "--output",
                     str(tmp_path / "u.md")]) == 0
    assert "### Model: small" in (tmp_path / "u.md").read_text()


@pytest.mark.parametrize("code, oom", [(-9, True), (137, True), (-2, False), (1, False)])
def test_sweep_records_only_a_killed_run_as_oom(tmp_path, monkeypatch, code, oom):
    import subprocess

    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, code, "", "benchlab: error: interrupted"))
    d = tmp_path / "results"
    argv = ["lm-timing", "sweep", "--sizes", "small", "--contexts", "128", "--results-dir",
            str(d)]
    assert (top_main(argv) == 0) is oom
    files = sorted(d.iterdir())
    if oom:  # the OOM record: no times, and the parameter count (no model needed)
        assert [f.name for f in files] == ["bench_small_128.json", "store.jsonl"]
        doc = json.loads(files[0].read_text())
        assert doc["status"] == "oom" and doc["mean_time_ms"] is None
        assert doc["num_params"] == num_params_small() and isinstance(doc["num_params"], int)
        (record,) = load_records(files[1])
        assert record["metrics"]["status"] == "oom"
        assert record["metrics"]["num_params"] == doc["num_params"]
    else:
        assert files == []  # an interrupted or failed run writes nothing


def num_params_small():
    """Independent count for the small size (d 768, ff 3072, 12 layers, vocab 10000, untied):
    embedding + head, per layer 4 d^2 attention + 3 d ff SwiGLU + 2 d RMSNorm, final norm."""
    d, ff, n, v = 768, 3072, 12, 10_000
    return 2 * v * d + n * (4 * d * d + 3 * d * ff + 2 * d) + d


@pytest.mark.parametrize("bad", [["--num_heads", "3", "--d_model", "128"], ["--device", "tpu"],
                                 ["--d_model", "0"], ["--d_ff", "-4"], ["--num_trials", "0"],
                                 ["--num_warmups", "-1"], ["--batch_size", "x"]])
def test_run_rejects_bad_dimensions_in_one_line(tmp_path, capsys, bad):
    out = tmp_path / "r.json"
    argv = ["lm-timing", "run", "--model_size", "tiny", "--context_length", "8", *bad,
            "--output", str(out)]
    try:
        code = top_main(argv)
    except SystemExit as e:  # argparse's usage error
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not out.exists()
    assert bad[0] in err[-1] and "Traceback" not in "".join(err)
