"""The pytest plugin, driven through pytester: record, store, resume, reports, bad input."""

import json
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent  # console scripts of the running environment

DUMMY_EXP = '''
from dataclasses import dataclass

from benchlab.core.report import records_frame, write_table


@dataclass(frozen=True)
class Config:
    n: int


CONFIGS = {"tiny": Config(4), "small": Config(6), "paper": Config(8)}
METRICS = {"square": 0, "label": 0, "pair": 0, "timed": None}
PUBLISH_SCALES = ("small",)


def inputs(case, config):
    """The digest of input.txt, when there is one: a changed input reruns every case."""
    from pathlib import Path

    from benchlab.core.provenance import sha256_file

    return {"input.txt": sha256_file("input.txt")} if Path("input.txt").exists() else {}


def square_cases(config):
    return [{"id": f"c{i}", "x": i} for i in range(config.n)]


def report(records, outdir):
    frame = records_frame(records)[["id", "case.x", "square"]]
    write_table(frame, outdir, "summary")
'''

DUMMY_BENCH = '''
import pytest

from benchlab.core import measure

pytestmark = pytest.mark.experiment("dummy_exp")


@pytest.mark.cases("square_cases")
def test_square(benchmark, case, device, record):
    seconds = []
    out = measure(benchmark, lambda: case["x"] ** 2, device, warmup=1, rounds=3, times=seconds)
    record(square=out, label=f"x={case['x']}", pair=[case["x"], out], timed=len(seconds))
'''


@pytest.fixture
def suite(pytester, monkeypatch):
    # Inner runs are not xdist workers, even when this test runs in one.
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.setenv("BENCHLAB_EXPERIMENTS", "dummy_exp=dummy_exp")
    pytester.makepyfile(dummy_exp=DUMMY_EXP, test_dummy=DUMMY_BENCH)
    pytester.syspathinsert()
    return pytester


def run(pytester, *args):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--bench-store", "store.jsonl",
                                         "--bench-reports", "reports", *args)


def store_lines(pytester):
    return (pytester.path / "store.jsonl").read_text().splitlines()


def test_record_lands_in_extra_info_and_store(suite):
    result = run(suite, "--benchmark-json", "out.json")
    result.assert_outcomes(passed=4)
    benches = json.loads((suite.path / "out.json").read_text())["benchmarks"]
    by_name = {b["name"]: b["extra_info"] for b in benches}
    info = by_name["test_square[c3]"]
    assert info["square"] == 9 and info["label"] == "x=3" and info["pair"] == [3, 9]
    assert info["benchlab"]["experiment"] == "dummy_exp"
    assert info["benchlab"]["time"]["rounds"] == 3
    assert info["timed"] == 3  # warm-up rounds are not among the times measure() hands back
    records = [json.loads(line) for line in store_lines(suite)]
    assert sorted(r["metrics"]["square"] for r in records) == [0, 1, 4, 9]
    assert (suite.path / "reports/dummy_exp/summary.md").exists()


TIMER_BENCH = '''
import pytest

pytestmark = pytest.mark.experiment("dummy_exp")


@pytest.mark.cases("square_cases")
def test_square(case, timer, record):  # as the bench modules time: through `timer`
    record(square=timer.measure(lambda: case["x"] ** 2, warmup=1, rounds=3))
'''


def test_record_lands_in_extra_info_through_the_timer_fixture(pytester, monkeypatch):
    """`timer` takes the benchmark by getfixturevalue, which is not in the item's funcargs:
    without looking through the timer, every bench module's benchmark JSON had an empty
    extra_info and `benchlab report/publish out.json` found no records."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.setenv("BENCHLAB_EXPERIMENTS", "dummy_exp=dummy_exp")
    pytester.makepyfile(dummy_exp=DUMMY_EXP, test_timer=TIMER_BENCH)
    pytester.syspathinsert()
    run(pytester, "--benchmark-json", "out.json").assert_outcomes(passed=4)
    benches = json.loads((pytester.path / "out.json").read_text())["benchmarks"]
    assert sorted(b["extra_info"]["square"] for b in benches) == [0, 1, 4, 9]
    assert {b["extra_info"]["benchlab"]["experiment"] for b in benches} == {"dummy_exp"}
    assert all(b["extra_info"]["benchlab"]["time"]["rounds"] == 3 for b in benches)


def test_benchmark_disable_still_records_and_reports(suite):
    run(suite, "--benchmark-disable").assert_outcomes(passed=4)
    records = [json.loads(line) for line in store_lines(suite)]
    assert all(r["time"] is None and r["metrics"]["timed"] == 1 for r in records)
    assert (suite.path / "reports/dummy_exp/summary.md").read_text().count("square[c") == 4


def test_scale_picks_the_config(suite):
    run(suite, "--bench-scale", "small").assert_outcomes(passed=6)


def test_resume_skips_finished_cases(suite):
    run(suite, "-k", "c0 or c1").assert_outcomes(passed=2)
    result = run(suite, "--bench-resume")
    result.assert_outcomes(passed=2, skipped=2)
    assert len(store_lines(suite)) == 4
    # the report covers the resumed cases too
    assert (suite.path / "reports/dummy_exp/summary.csv").read_text().count("square[c") == 4
    # without resume every case runs again
    run(suite, "--no-bench-resume").assert_outcomes(passed=4)


def test_truncated_last_line_keeps_every_other_record(suite):
    run(suite).assert_outcomes(passed=4)
    store = suite.path / "store.jsonl"
    lines = store.read_text().splitlines(keepends=True)
    store.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # a killed write
    result = suite.run(BIN / "benchlab", "report", "store.jsonl", "--outdir", "rebuilt")
    assert result.ret == 0
    assert "store.jsonl:4: skipped a corrupt line" in result.stderr.str()
    assert (suite.path / "rebuilt/dummy_exp/summary.csv").read_text().count("square[c") == 3
    # resume reruns only the lost case, and appends on a fresh line
    run(suite, "--bench-resume").assert_outcomes(passed=1, skipped=3)
    assert sum(1 for ln in store.read_text().splitlines() if ln.endswith("}")) == 4


def test_report_from_saved_json_is_byte_identical(suite):
    run(suite, "--benchmark-json", "out.json").assert_outcomes(passed=4)
    result = suite.run(BIN / "benchlab", "report", "out.json", "--outdir", "rebuilt")
    assert result.ret == 0, result.stderr.str()
    for ext in ("md", "csv", "tex"):
        live = (suite.path / f"reports/dummy_exp/summary.{ext}").read_bytes()
        assert live == (suite.path / f"rebuilt/dummy_exp/summary.{ext}").read_bytes()


def test_pytest_benchmark_compare_accepts_the_json(suite):
    run(suite, "--benchmark-json", "out.json").assert_outcomes(passed=4)
    result = suite.run(BIN / "pytest-benchmark", "compare", "out.json")
    assert result.ret == 0, result.stderr.str()
    assert "test_square[c3]" in result.stdout.str()


def test_machine_info_has_torch_and_device_facts(suite):
    run(suite, "--benchmark-json", "out.json").assert_outcomes(passed=4)
    info = json.loads((suite.path / "out.json").read_text())["machine_info"]["benchlab"]
    assert {"torch", "transformers", "cuda", "gpu_count", "torch_threads", "blas"} <= set(info)
    record = json.loads(store_lines(suite)[0])
    assert {"cpu", "isa", "torch", "transformers", "torch_threads", "blas"} <= set(
        record["machine"])
    assert record["commit"] is None or len(record["commit"]) == 40


@pytest.mark.parametrize("args, needle", [
    (["--bench-scale", "huge"], "argument --bench-scale: invalid choice: 'huge'"),
    (["--bench-device", "tpu"], "argument --bench-device: invalid choice: 'tpu'"),
    (["--bench-threads", "-3"], "argument --bench-threads: must be in [0, 1024], got -3"),
    (["--bench-threads", "100000"], "argument --bench-threads: must be in [0, 1024], got 100000"),
    (["--bench-seed", str(2**70)], "argument --bench-seed: must be in [0, 4294967295]"),
    (["--bench-reports", "dummy_exp.py"], "argument --bench-reports: dummy_exp.py: exists and is "
                                           "not a folder"),
])
def test_bad_options_give_one_line_errors(suite, args, needle):
    result = run(suite, *args)
    assert result.ret != 0
    errors = [ln for ln in result.stderr.lines if ": error: " in ln]
    assert len(errors) == 1 and needle in errors[0], result.stderr.lines
    assert not (suite.path / "store.jsonl").exists()


def test_a_store_that_is_no_regular_file_is_refused_before_any_case_runs(suite):
    (suite.path / "store.jsonl").symlink_to("/dev/null")
    result = run(suite)
    assert result.ret != 0
    assert any("store.jsonl: result store is not a regular file" in ln
               for ln in result.stderr.lines), result.stderr.lines
    assert "passed" not in result.stdout.str()


def test_cuda_without_a_gpu_is_an_error_not_a_skipped_run(suite):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run(suite, "--bench-device", "cuda")
    assert result.ret != 0
    assert any("cuda requested but torch sees no CUDA device" in ln
               for ln in result.stderr.lines), result.stderr.lines


def test_report_bad_input_errors_and_overwrites_nothing(suite):
    run(suite).assert_outcomes(passed=4)
    before = (suite.path / "reports/dummy_exp/summary.md").read_bytes()
    (suite.path / "bad.json").write_text('{"benchmarks": [')
    (suite.path / "other.json").write_text('{"machine_info": {}}')
    cases = [("bad.json", "benchlab: error: bad.json: not valid JSON (Expecting value: line 1 "
                           "column 17 (char 16))"),
             ("other.json", "benchlab: error: other.json: benchmarks: missing; not a "
                            "pytest-benchmark JSON, a result store or a baseline"),
             ("missing.jsonl", "benchlab: error: missing.jsonl: no such file")]
    for path, expected in cases:
        result = suite.run(BIN / "benchlab", "report", path, "--outdir", "reports")
        assert result.ret == 2
        assert result.stderr.lines == [expected]
    assert (suite.path / "reports/dummy_exp/summary.md").read_bytes() == before


@pytest.mark.parametrize("change", ["input", "seed", "threads", "bench module"])
def test_resume_reruns_when_what_made_the_result_changes(suite, change):
    (suite.path / "input.txt").write_text("a")
    run(suite, "--bench-threads", "1").assert_outcomes(passed=4)
    run(suite, "--bench-threads", "1", "--bench-resume").assert_outcomes(skipped=4)
    args = ["--bench-threads", "1", "--bench-resume"]
    if change == "input":
        (suite.path / "input.txt").write_text("b")
    elif change == "seed":
        args += ["--bench-seed", "7"]
    elif change == "threads":
        args[1] = "2"
    else:
        bench = suite.path / "test_dummy.py"
        bench.write_text(bench.read_text().replace("square=out", "square=out * 2"))
    result = run(suite, *args)
    result.assert_outcomes(passed=4)
    assert "benchlab: 0 cases resumed from store.jsonl, 4 run" in result.stdout.str()


def test_runs_without_pytest_benchmark(suite):
    result = run(suite, "-p", "no:benchmark")
    result.assert_outcomes(passed=4)
    records = [json.loads(line) for line in store_lines(suite)]
    assert sorted(r["metrics"]["square"] for r in records) == [0, 1, 4, 9]
    assert all(r["time"] is None for r in records)


def test_unknown_experiment_in_a_marker_fails_that_test_in_one_line(suite):
    suite.makepyfile(test_typo="""
import pytest

@pytest.mark.experiment("dumy_exp")
def test_typo(record):
    record(x=1)
""")
    result = run(suite, "test_typo.py")
    result.assert_outcomes(errors=1)  # in its setup, with the rest of the session going on
    out = result.stdout.str()
    assert "INTERNALERROR" not in out
    assert ("test_typo.py::test_typo: pytest.mark.experiment: unknown experiment 'dumy_exp'; "
            "did you mean 'dummy_exp'? (known: dummy_exp, layer_selection, lm_timing, "
            "long_exposure, moe_routing, sublora)") in result.stdout.lines


def test_resumed_json_rebuilds_the_live_report_byte_for_byte(suite):
    run(suite, "-k", "c0 or c1").assert_outcomes(passed=2)
    run(suite, "--bench-resume", "--benchmark-json", "out.json").assert_outcomes(
        passed=2, skipped=2)
    result = suite.run(BIN / "benchlab", "report", "out.json", "--outdir", "rebuilt")
    assert result.ret == 0, result.stderr.str()
    for ext in ("md", "csv", "tex"):
        live = (suite.path / f"reports/dummy_exp/summary.{ext}").read_bytes()
        assert live == (suite.path / f"rebuilt/dummy_exp/summary.{ext}").read_bytes()
    assert live.decode().count("square[c") == 4


def test_unwritable_store_stops_the_session_before_any_case(suite):
    (suite.path / "store.jsonl").mkdir()
    result = run(suite)
    assert result.ret != 0
    assert "--bench-store: store.jsonl" in result.stderr.str()
    assert "passed" not in result.stdout.str()


def test_publish_writes_only_the_scales_an_experiment_publishes(suite):
    run(suite).assert_outcomes(passed=4)  # tiny; dummy_exp publishes small only
    result = suite.run(BIN / "benchlab", "publish", "store.jsonl", "--scale", "tiny",
                       "--outdir", "published")
    assert result.ret == 0, result.stderr.str()
    assert "dummy_exp: its committed reports are not tiny scale" in result.stderr.str()
    assert not (suite.path / "published").exists()
    run(suite, "--bench-scale", "small").assert_outcomes(passed=6)
    result = suite.run(BIN / "benchlab", "publish", "store.jsonl", "--scale", "small",
                       "--outdir", "published")
    assert result.ret == 0, result.stderr.str()
    assert (suite.path / "published/dummy_exp/summary.md").read_text().count("square[c") == 6
