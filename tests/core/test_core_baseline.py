"""`benchlab baseline` never destroys a baseline, and the readers refuse what our writer never
makes (issue 36): each bad run is one line on stderr naming the file, a non-zero exit, and the
baseline file byte-identical."""

import json

import pytest

from benchlab.cli import main


def record(case: str, **metrics) -> dict:
    return {"experiment": "layer_selection", "case": case, "kind": case.split("[")[0],
            "scale": "tiny", "config_hash": "h" + case, "code_version": "v",
            "metrics": metrics or {"benefit": 1.0}}


@pytest.fixture
def baseline(tmp_path):
    path = tmp_path / "tiny.json"
    assert main(["baseline", str(write(tmp_path / "run.json", [record("solve[a]"),
                                                              record("solve[b]")])),
                 "--output", str(path)]) == 0
    return path


def write(path, records, raw: str | None = None):
    path.write_text(raw if raw is not None else json.dumps({"records": records}))
    return path


def one_line_error(capsys, argv, path) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and err[0].startswith("benchlab: error: "), err
    assert str(path) in err[0]
    return err[0]


BAD_RUNS = {
    "unknown experiment": '{"records": [{"experiment": "os", "case": "solve[a]", "kind": "solve",'
                          ' "scale": "tiny", "config_hash": "h", "code_version": "v",'
                          ' "metrics": {"benefit": 1}}]}',
    "NaN metric": json.dumps({"records": [record("solve[a]", benefit=float("nan")),
                                          record("solve[b]")]}),
    "1e999 metric": json.dumps({"records": [record("solve[a]"), record("solve[b]")]}).replace(
        '"benefit": 1.0}', '"benefit": 1e999}', 1),
    "undeclared metric": json.dumps({"records": [record("solve[a]", nonsense=1),
                                                 record("solve[b]")]}),
    "string metrics": json.dumps({"records": [dict(record("solve[a]"), metrics="x")]}),
    "dict metric": json.dumps({"records": [record("solve[a]", benefit={"a": 1}),
                                           record("solve[b]")]}),
    "fewer cases": json.dumps({"records": [record("solve[a]")]}),
    "extra_info a list": '{"benchmarks": [{"extra_info": [1]}]}',
    "deep nesting": "[" * 100000,
}


@pytest.mark.parametrize("name", BAD_RUNS)
def test_a_bad_run_leaves_the_baseline_as_it_was(tmp_path, capsys, baseline, name):
    before = baseline.read_bytes()
    run = write(tmp_path / "bad.json", None, BAD_RUNS[name])
    one_line_error(capsys, ["baseline", run, "--output", baseline], run)
    assert baseline.read_bytes() == before
    if name != "fewer cases":  # the other readers refuse it the same way
        for argv in (["report", run, "--outdir", tmp_path / "rep"], ["compare", baseline, run],
                     ["publish", run, "--scale", "tiny", "--outdir", tmp_path / "pub"]):
            one_line_error(capsys, argv, run)
        assert not (tmp_path / "rep").exists() and not (tmp_path / "pub").exists()


def test_cases_may_be_dropped_by_name(tmp_path, capsys, baseline):
    run = write(tmp_path / "run.json", [record("solve[a]")])
    assert main(["baseline", str(run), "--output", str(baseline),
                 "--drop", "layer_selection/solve[[]b]"]) == 0
    assert [r["case"] for r in json.loads(baseline.read_text())["records"]] == ["solve[a]"]


def test_an_output_that_is_a_folder_is_refused_before_reading(tmp_path, capsys):
    run = write(tmp_path / "run.json", [record("solve[a]")])
    with pytest.raises(SystemExit) as e:
        main(["baseline", str(run), "--output", str(tmp_path)])
    assert e.value.code == 2
    assert "is a folder, not a file" in capsys.readouterr().err
