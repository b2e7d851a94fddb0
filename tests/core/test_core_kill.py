"""Kill a running suite with SIGKILL at chosen points; resume must lose nothing, repeat nothing."""

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter

EXP = '''
import os
import signal
from dataclasses import dataclass

from benchlab.core.report import records_frame, write_table


@dataclass(frozen=True)
class Config:
    n: int


CONFIGS = {"tiny": Config(200), "small": Config(200), "paper": Config(200)}


def cases(config):
    return [{"id": f"c{i:03d}", "x": i} for i in range(config.n)]


def work(x):
    if x == int(os.environ.get("KILL_AT", "-1")):  # a chosen point: mid-run, mid-case
        os.kill(os.getpid(), signal.SIGKILL)
    return (x * 7919) % 1000


def report(records, outdir):
    write_table(records_frame(records)[["id", "case.x", "value"]], outdir, "summary")
'''

BENCH = '''
import pytest

import kill_exp

pytestmark = pytest.mark.experiment("kill_exp")


@pytest.mark.cases("cases")
def test_case(benchmark, case, record):
    record(value=benchmark.pedantic(kill_exp.work, args=(case["x"],), rounds=1, iterations=1))
'''


def pytest_cmd(store, reports):
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_kill.py",
            "--bench-resume", "--bench-store", store, "--bench-reports", reports]


KILLS = 6  # each kill is one inner pytest run (about 15 s on 2 busy cores)


def test_sigkill_at_chosen_points_then_resume(pytester, monkeypatch):
    monkeypatch.setenv("BENCHLAB_EXPERIMENTS", "kill_exp=kill_exp")
    pytester.makepyfile(kill_exp=EXP, test_kill=BENCH)
    env = {**os.environ, "PYTHONPATH": str(pytester.path)}
    env.pop("PYTEST_XDIST_WORKER", None)  # the inner runs are not xdist workers
    rng = random.Random(2026)
    kill_points = sorted(rng.sample(range(1, 200), KILLS))
    for point in kill_points:  # each run resumes, then dies inside case `point`
        proc = subprocess.run(pytest_cmd("store.jsonl", "killed"), cwd=pytester.path,
                              env={**env, "KILL_AT": str(point)}, capture_output=True)
        assert proc.returncode == -signal.SIGKILL, proc.stdout[-2000:]
        done = {json.loads(ln)["case"] for ln in (pytester.path / "store.jsonl").read_text()
                .splitlines() if ln.endswith("}")}
        assert len(done) == point  # every case before the kill point landed, none after
    done = subprocess.run(pytest_cmd("store.jsonl", "killed"), cwd=pytester.path, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:]

    records = []
    for line in (pytester.path / "store.jsonl").read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # at most a line cut by a kill; the plugin warns and skips it
    counts = Counter(r["case"] for r in records)
    assert len(counts) == 200 and set(counts.values()) == {1}

    clean = subprocess.run(pytest_cmd("clean.jsonl", "clean"), cwd=pytester.path, env=env,
                           capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout[-2000:]
    for ext in ("md", "csv", "tex"):
        killed = (pytester.path / f"killed/kill_exp/summary.{ext}").read_bytes()
        assert killed == (pytester.path / f"clean/kill_exp/summary.{ext}").read_bytes()
