"""Kill a running suite with SIGKILL twenty times; resume must lose nothing and repeat nothing."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

EXP = '''
import time
from dataclasses import dataclass

from benchlab.core.report import records_frame, write_table


@dataclass(frozen=True)
class Config:
    n: int


CONFIGS = {"tiny": Config(200), "small": Config(200), "paper": Config(200)}


def cases(config):
    return [{"id": f"c{i:03d}", "x": i} for i in range(config.n)]


def work(x):
    time.sleep(0.004)
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


def test_sigkill_twenty_times_then_resume(pytester):
    pytester.makepyfile(kill_exp=EXP, test_kill=BENCH)
    env = {**os.environ, "PYTHONPATH": str(pytester.path)}
    env.pop("PYTEST_XDIST_WORKER", None)  # the inner runs are not xdist workers
    rng = random.Random(2026)
    kills = 0
    for _ in range(20):
        proc = subprocess.Popen(pytest_cmd("store.jsonl", "killed"), cwd=pytester.path, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 2.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 15, "the suite finished before it could be killed: make the cases slower"
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
