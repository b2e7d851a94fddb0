"""Sweeps over jobs: --bench-shard (core.shard), stores merged when read, `benchlab submit` with
submitit's local executor and, where a Slurm controller answers (CI starts one with
.ci/slurm.sh), on the real Slurm: a job cancelled part-way and resubmitted loses nothing and
duplicates nothing, and the merged results equal a one-process run's."""

import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from benchlab.cli import main
from benchlab.core import shard
from benchlab.core.errors import BenchlabError
from benchlab.core.results import load_records

SLOW_EXP = textwrap.dedent('''
    import time
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Config:
        n: int
        pause: float

    # paper: cases slow enough that a job cancelled after two still has some left after Slurm's
    # KillWait (submitit lets SIGTERM pass; SIGKILL follows 5 s later)
    CONFIGS = {"tiny": Config(12, 0.0), "small": Config(16, 0.3), "paper": Config(16, 2.0)}
    METRICS = {"square": 0, "cube": 0}

    def square_cases(config):
        return [{"id": f"c{i:02d}", "x": i} for i in range(config.n)]

    def cost(case, config):
        return 1 + case["x"] % 3   # unequal costs: the split must balance them

    def measure_square(case, config, timer):
        time.sleep(config.pause)
        return {"square": case["x"] ** 2, "cube": case["x"] ** 3}

    KINDS = {"square": (square_cases, measure_square)}

    def report(records, outdir):
        pass
''')
BENCH = textwrap.dedent('''
    import pytest

    pytestmark = pytest.mark.experiment("sweep_exp")

    @pytest.mark.cases("square")
    def test_square(case, measure):
        measure(case)
''')


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "sweep_exp.py").write_text(SLOW_EXP)
    (tmp_path / "test_sweep_bench.py").write_text(BENCH)
    monkeypatch.setenv("BENCHLAB_EXPERIMENTS", "sweep_exp=sweep_exp")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path),
                                                      os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def pytest_run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "test_sweep_bench.py", "-q",
                           "-p", "no:cacheprovider", "--no-bench-report", *args],
                          capture_output=True, text=True)


def collected(*args) -> list[str]:
    out = pytest_run("--co", *args)
    return sorted(ln for ln in out.stdout.splitlines() if "::" in ln)


# -- sharding ---------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["3/2", "0/0", "1", "-1/2", "a/b", ""])
def test_bad_shard_specs(spec):
    with pytest.raises(BenchlabError, match="--bench-shard"):
        shard.parse(spec)


def test_lpt_split_is_a_balanced_partition_within_four_thirds_of_the_optimum():
    import random

    rng = random.Random(0)
    for _ in range(40):
        costs = {f"c{i}": float(rng.choice([1, 1, 2, 3, 8])) for i in range(rng.randint(1, 6))}
        n = rng.randint(1, 4)
        where = shard.assign(costs, n)
        assert set(where) == set(costs) and set(where.values()) <= set(range(n))
        ids = list(costs)
        best = min(max(sum(costs[k] for k, s in zip(ids, split, strict=True) if s == j)
                       for j in range(n))
                   for split in itertools.product(range(n), repeat=len(ids)))
        assert max(shard.loads(costs, n)) <= 4 / 3 * best + 1e-9


def test_shards_partition_the_collected_cases(project):
    everything = collected()
    parts = [collected("--bench-shard", f"{i}/3") for i in range(3)]
    assert len(everything) == 12 and sorted(sum(parts, [])) == everything
    assert max(map(len, parts)) - min(map(len, parts)) <= 2  # balanced by cost, not count


def test_resume_skips_the_cases_a_measure_test_stored(project):
    assert pytest_run("--bench-store", "s.jsonl", "--bench-resume").returncode == 0
    again = pytest_run("--bench-store", "s.jsonl", "--bench-resume")
    assert "benchlab: 12 cases resumed from s.jsonl, 0 run" in again.stdout, again.stdout
    assert (project / "s.jsonl").read_text().count("\n") == 12


# -- merged stores ----------------------------------------------------------------------------

def test_a_folder_of_stores_is_read_as_one_run_and_disagreeing_duplicates_are_refused(project):
    for i in range(2):
        assert pytest_run("--bench-shard", f"{i}/2", "--bench-store",
                          f"stores/s{i}.jsonl").returncode == 0
    merged = load_records(project / "stores")
    assert sorted(r["case"] for r in merged) == sorted(f"square[c{i:02d}]" for i in range(12))
    # the same case stored twice with the same result is one case; with another, an error
    lines = (project / "stores/s0.jsonl").read_text().splitlines()
    (project / "stores/s2.jsonl").write_text(lines[0] + "\n")
    assert len(load_records(project / "stores")) == 12
    bad = json.loads(lines[0])
    bad["metrics"]["square"] += 1
    (project / "stores/s2.jsonl").write_text(json.dumps(bad) + "\n")
    with pytest.raises(BenchlabError, match="stored in .* too, with another square"):
        load_records(project / "stores")


# -- benchlab submit --------------------------------------------------------------------------

def one_process(project, scale="small") -> dict:
    assert pytest_run("--bench-scale", scale, "--bench-store", "one.jsonl").returncode == 0
    return {r["case"]: r["metrics"] for r in load_records(project / "one.jsonl")}


def submit(results, executor, *more, scale="small"):
    return main(["submit", "--executor", executor, "--shards", "2", "--results", str(results),
                 "--time", "10", *more, "--", "test_sweep_bench.py", "-q",
                 "--bench-scale", scale, "--no-bench-report"])


def store_lines(results) -> list[dict]:
    return [json.loads(ln) for p in sorted((results / "stores").glob("*.jsonl"))
            for ln in p.read_text().splitlines() if ln.strip()]


def test_local_submit_runs_every_shard_and_resubmits_nothing_when_done(project, capsys):
    results = project / "sweep"
    assert submit(results, "local", "--wait") == 0
    out = capsys.readouterr().out
    assert "shard 0/2: job" in out and "finished" in out
    lines = store_lines(results)
    assert sorted(r["case"] for r in lines) == sorted(f"square[c{i:02d}]" for i in range(16))
    assert {r["case"]: r["metrics"] for r in load_records(results / "stores")} == \
        one_process(project)
    assert submit(results, "local") == 0
    assert "nothing to submit" in capsys.readouterr().out
    assert main(["status", str(results)]) == 0
    table = capsys.readouterr().out
    assert table.count("finished") == 2 and " 8 " in table


def test_submit_bad_input_submits_nothing(project, capsys):
    results = project / "sweep"
    assert submit(results, "local", "--wait") == 0
    capsys.readouterr()
    code = main(["submit", "--executor", "local", "--shards", "3", "--results", str(results),
                 "--", "test_sweep_bench.py"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "holds another sweep" in err[0]
    with pytest.raises(SystemExit):
        main(["submit", "--executor", "pbs", "--results", str(results), "--", "x"])
    assert main(["submit", "--executor", "local", "--results", str(project / "r2")]) == 2


def slurm_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return out.returncode == 0 and bool(out.stdout.strip())


@pytest.mark.skipif(not slurm_up(), reason="no Slurm controller answers here (CI starts one "
                                            "with .ci/slurm.sh)")
def test_slurm_sweep_with_a_job_cancelled_part_way_loses_and_duplicates_nothing(project, capsys):
    results = project / "sweep"
    assert submit(results, "slurm", "--cpus-per-job", "1", scale="paper") == 0
    job = json.loads((results / "jobs/job-1.json").read_text())["job_id"]
    store = results / "stores/shard-1.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (store.exists() and store.read_text().count("\n") >= 2):
        time.sleep(0.5)
    assert store.exists(), "shard 1 stored nothing in 300 s"
    subprocess.run(["scancel", str(job)], check=True)
    while time.time() < deadline and subprocess.run(
            ["squeue", "-h", "-j", str(job)], capture_output=True, text=True).stdout.strip():
        time.sleep(0.5)
    part = store.read_text().count("\n")
    assert 0 < part < 8, f"the cancelled job had stored {part} of 8 cases"
    capsys.readouterr()
    assert submit(results, "slurm", "--cpus-per-job", "1", "--wait", scale="paper") == 0
    out = capsys.readouterr().out
    assert "shard 1/2: job" in out and "shard 0/2: job" not in out  # only the unfinished one
    cases = [r["case"] for r in store_lines(results)]
    assert sorted(cases) == sorted(f"square[c{i:02d}]" for i in range(16))  # each exactly once
    assert {r["case"]: r["metrics"] for r in load_records(results / "stores")} == \
        one_process(project, "paper")


@pytest.mark.skipif(not slurm_up(), reason="no Slurm controller answers here (CI starts one "
                                            "with .ci/slurm.sh)")
def test_a_two_task_gloo_training_job_under_slurm_matches_one_process(tmp_path, monkeypatch,
                                                                       capsys):
    """`benchlab submit --train`: torch.distributed's environment from Slurm's, gloo on CPU,
    two tasks training one run; its losses equal a one-process run's (as under torchrun)."""
    for k, v in {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}.items():
        monkeypatch.setenv(k, v)
    args = ["long-exposure", "finetune", "--model", "opt-tiny", "--method", "lora", "--mode",
            "dense", "--seq-len", "64", "--steps", "3", "--batch-size", "4", "--records", "150",
            "--device", "cpu"]
    assert main(["submit", "--executor", "slurm", "--train", "--tasks-per-node", "2",
                 "--cpus-per-job", "1", "--time", "10", "--results", str(tmp_path / "job"),
                 "--wait", "--", *args, "--out", str(tmp_path / "two")]) == 0
    assert "2 tasks: job" in capsys.readouterr().out
    one = subprocess.run([sys.executable, "-m", "benchlab", *args, "--out",
                          str(tmp_path / "one")], capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    log1, log2 = (json.loads((tmp_path / d / "losses.json").read_text()) for d in ("one", "two"))
    assert (log1["processes"], log2["processes"]) == (1, 2)
    assert max(abs(a - b) for a, b in zip(log1["losses"], log2["losses"], strict=True)) < 1e-5


def test_four_shards_of_the_paper_plan_are_balanced_by_planned_cost():
    """The goal: the longest shard's planned cost within 1.3x of the mean for n = 4 over the
    paper-scale plan (core.plan's per-case GPU-time estimates, what --bench-shard balances)."""
    from benchlab.core.plan import make_plan

    costs = {f"{p.experiment}/{c.kind}[{c.case_id}]": c.seconds
             for p in make_plan("paper") for c in p.costs}
    loads = shard.loads(costs, 4)
    assert len(costs) > 1000 and max(loads) <= 1.3 * sum(loads) / 4
