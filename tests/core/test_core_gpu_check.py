"""benchlab.gpu_check (`benchlab gpu-check`): the plumbing, on the CPU, on a tiny subset of bench/.

The GPU run itself is scripts/gpu_check.sh on a CUDA machine; here the same code runs one timed
case with a speed ratio and one case skipped for absent paper weights, at paper scale, smoke
budget, in well under a minute."""

import json
import sys

import pytest

from benchlab import gpu_check

# the exact DP vs HiGHS on one shared case (a tracked ratio), and a zoo case of opt-125m whose
# hub weights are not here (skipped by the package's `requires`, offline)
SELECT = "(exact_vs_milp and opt_125m) or (test_solve and opt-125m and random-exact)"


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    models = tmp_path_factory.mktemp("models")  # an empty models folder: no paper weights
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("HF_HOME", str(models))  # an empty HF cache too
    try:
        rc = gpu_check.main(["--out", str(out), "--device", "cpu", "--models", str(models),
                             "--tests", "bench/test_layer_selection.py", "-k", SELECT,
                             "--pytest-args", "--bench-threads 1 --benchmark-disable"])
    finally:
        mp.undo()
    return rc, out


def test_the_check_runs_pytest_and_summarizes_passed_skipped_and_ratios(checked):
    rc, out = checked
    text = (out / "summary.md").read_text()
    assert rc == 0, text
    assert "| layer_selection | 1 | 1 | 0 |" in text  # passed, skipped, failed
    assert "`test_exact_vs_milp[opt_125m-n1]`" in text
    assert "facebook/opt-125m: weights not available offline" in text  # the skip reason
    assert "| layer_selection | exact_vs_milp | `speed[opt_125m-n1]` |" in text
    assert "--bench-scale paper --bench-budget smoke --bench-device cpu" in text
    assert sys.executable in text  # one interpreter throughout
    for name in ("store.jsonl", "pytest.log", "outcomes.json"):
        assert (out / name).is_file()
    tests = json.loads((out / "outcomes.json").read_text())["tests"]
    assert {t["experiment"] for t in tests.values()} == {"layer_selection"}


def test_a_failed_case_fails_the_check_and_names_its_error(tmp_path):
    (tmp_path / "outcomes.json").write_text(json.dumps({"exitstatus": 1, "tests": {
        "bench/test_x.py::test_a[c1]": {"outcome": "passed", "when": "call", "reason": "",
                                        "duration": 1.0, "experiment": "lm_timing"},
        "bench/test_x.py::test_b[c2]": {"outcome": "failed", "when": "call", "duration": 0.5,
                                        "reason": "RuntimeError: CUDA out of memory",
                                        "experiment": "lm_timing"}}}))
    text, failed = gpu_check.summary(tmp_path, {"device": "test"}, ["pytest"], 1)
    assert failed == 1
    assert "| lm_timing | 1 | 0 | 1 |" in text
    assert "**Failed** `bench/test_x.py::test_b[c2]` (call): RuntimeError: CUDA out of memory" \
        in text


def test_pytest_failing_without_a_case_failure_still_fails_the_check(tmp_path):
    rc = gpu_check.main(["--out", str(tmp_path), "--device", "cpu", "--scale", "tiny",
                         "--tests", "bench/test_layer_selection.py", "-k", "no_such_case"])
    assert rc == 1  # pytest exit status 5: no tests ran, nothing was checked
    assert "pytest exit status 5" in (tmp_path / "summary.md").read_text()


def test_experiment_of_a_bench_module():
    assert gpu_check.experiment_of_path("bench/test_long_exposure_ops.py::t[x]") == \
        "long_exposure"
    assert gpu_check.experiment_of_path("bench/test_lm_timing.py::t") == "lm_timing"
