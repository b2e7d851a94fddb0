"""The weights' identity is in the resume key: replacing one model's weights reruns exactly that
model's cases (paper scale, smoke budget, a 1-layer paper-shaped OPT-125m built here)."""

import os
import subprocess
import sys

import pytest

from benchlab.layer_selection import data


def run(*args, cwd, env):
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.skipif(not (data.shared_dir() / "cases" / "experiment_cases.json").exists(),
                    reason=f"shared layer-selection data not found under {data.shared_dir()}")
def test_replacing_one_models_weights_reruns_exactly_its_cases(tmp_path):
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    models = tmp_path / "models"

    def shapes(seed):
        out = run("benchlab", "zoo", "paper-shapes", str(models), "--layers", "1", "--models",
                  "opt-125m", "--seed", str(seed), cwd=repo, env=env)
        assert out.returncode == 0, out.stderr[-2000:]

    def bench():  # the zoo opt-125m cases read the weights; the shared opt_125m ones do not
        out = run("pytest", "bench/test_layer_selection.py", "-q", "-p", "no:cacheprovider",
                  "--bench-scale", "paper", "--bench-budget", "smoke", "--bench-models",
                  str(models), "--benchmark-disable", "--no-bench-report", "--bench-resume",
                  "--bench-store", str(tmp_path / "store.jsonl"),
                  "-k", "test_solve and (opt-125m or opt_125m)", cwd=repo, env=env)
        assert out.returncode == 0, out.stdout[-3000:]
        return next(ln for ln in out.stdout.splitlines() if ln.startswith("benchlab:"))

    shapes(seed=0)
    store = str(tmp_path / "store.jsonl")
    assert bench() == f"benchlab: 0 cases resumed from {store}, 30 run"
    assert bench() == f"benchlab: 30 cases resumed from {store}, 0 run"
    shapes(seed=1)  # other weights in the same folder: the zoo model's 15 cases only
    assert bench() == f"benchlab: 15 cases resumed from {store}, 15 run"
