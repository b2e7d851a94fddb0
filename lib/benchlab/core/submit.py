"""`benchlab submit` and `benchlab status`: a sweep as one job per shard, through submitit.

    benchlab submit --executor slurm --shards 4 --results /shared/sweep --gpus-per-job 1 \
        --partition gpu --time 240 -- bench/ --bench-scale paper
    benchlab status /shared/sweep                  # cases done / total per shard, job states
    benchlab report /shared/sweep                  # every shard's store, merged

Each job runs `pytest <pytest args> --bench-shard i/N --bench-resume` into its own store
(RESULTS/stores/shard-<i>.jsonl) under the one shared results folder; submitit makes the jobs a
Slurm job array (or local processes), requeues a preempted job (checkpoint: the rerun resumes
from the store), and keeps the logs under RESULTS/logs. Submitting again submits only the shards
whose last job did not finish cleanly and that have no job queued or running; each job skips the
cases already stored, so a cancelled or failed job loses nothing that was stored. With `--train`
the command after `--` is a benchlab command (`sublora train ...`) run in every task of one job
with torch.distributed's environment taken from Slurm's (nodes x tasks per node).
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

from .errors import BenchlabError, fail

STATE = "shard-{i}.json"


class ShardJob:
    """What one job runs (picklable for submitit): pytest on shard i of n, or a benchlab command
    under torch.distributed. `checkpoint` requeues it unchanged: resume does the rest."""

    def __init__(self, results: str, argv: list[str], shards: int, cwd: str, entry=None):
        self.results, self.argv, self.shards, self.cwd = results, argv, shards, cwd
        self.entry = entry  # --train: the benchlab command line's main (pickled by reference)

    def __call__(self, i: int) -> int:
        results = Path(self.results)
        if self.entry is not None:
            import submitit

            env = submitit.helpers.TorchDistributedEnvironment()
            env.export(overwrite=True)
            os.chdir(self.cwd)
            rc = self.entry(self.argv)
            if env.rank == 0:
                write_json(results / "jobs" / STATE.format(i=i), {"shard": i, "exit": rc})
            if rc:
                raise RuntimeError(f"rank {env.rank}: benchlab exited {rc}")
            return rc
        import pytest

        state = results / "jobs" / STATE.format(i=i)
        os.environ["BENCHLAB_SHARD_TOTAL"] = str(state.with_suffix(".total"))
        os.chdir(self.cwd)
        # in this process, not a child: a cancelled job must take its pytest with it (a child
        # that outlived `scancel` would go on storing beside the resubmitted job)
        rc = int(pytest.main([*self.argv, f"--bench-shard={i}/{self.shards}", "--bench-resume",
                              f"--bench-store={results / 'stores' / f'shard-{i}.jsonl'}",
                              f"--bench-reports={results / 'reports' / f'shard-{i}'}",
                              f"--junitxml={state.with_suffix('.xml')}",
                              "-p", "no:cacheprovider"]))
        write_json(state, {"shard": i, "exit": rc})
        if rc not in (0, 5):
            raise RuntimeError(f"shard {i}: pytest exited {rc} (log: {results / 'logs'})")
        return rc

    def checkpoint(self, i: int):
        import submitit

        return submitit.helpers.DelayedSubmission(self, i)


def write_json(path: Path, data: dict) -> None:
    from .store import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, sort_keys=True) + "\n")


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def slurm_reachable() -> None:
    """A one-line BenchlabError unless sbatch is installed and the controller answers."""
    if not shutil.which("sbatch"):
        raise BenchlabError("--executor slurm: sbatch not found (Slurm's client commands are "
                            "not installed here); use --executor local")
    out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        first = (out.stderr.strip().splitlines() or ["no answer"])[0][:160]
        raise BenchlabError(f"--executor slurm: Slurm not reachable ({first})")


def alive(job: dict) -> bool:
    """Is a recorded job still queued or running? (squeue for Slurm, the pid for local.)"""
    if not job.get("job_id"):
        return False
    if job.get("executor") == "slurm":
        out = subprocess.run(["squeue", "-h", "-j", str(job["job_id"]), "-o", "%T"],
                             capture_output=True, text=True)
        return out.returncode == 0 and bool(out.stdout.strip())
    try:
        os.kill(int(str(job["job_id"]).split("_")[0]), 0)
        return True
    except (OSError, ValueError):
        return False


def submit(args, pytest_args: list[str], entry=None) -> int:
    """Submit the shards of RESULTS that are not finished (see the module docstring); with
    `args.train`, one job running `entry(pytest_args)` (benchlab.cli.main) in every task."""
    import submitit

    results = Path(args.results).resolve()
    if args.executor == "slurm":
        slurm_reachable()
    for sub in ("stores", "jobs", "logs", "reports"):
        (results / sub).mkdir(parents=True, exist_ok=True)
    plan_path = results / "sweep.json"
    plan = {"pytest_args": pytest_args, "shards": args.shards, "train": args.train}
    old = read_json(plan_path)
    if old and {k: old.get(k) for k in plan} != plan:
        raise fail(str(plan_path), "pytest_args", f"this results folder holds another sweep "
                   f"({old.get('shards')} shards of {old.get('pytest_args')}); use a new folder")
    write_json(plan_path, plan)
    todo = [i for i in range(1 if args.train else args.shards) if not finished(results, i)]
    busy = [i for i in todo if alive(read_json(results / "jobs" / f"job-{i}.json"))]
    todo = [i for i in todo if i not in busy]
    if busy:
        print(f"benchlab submit: shards {busy} still have a job queued or running; left alone")
    if not todo:
        print(f"benchlab submit: nothing to submit: every shard of {results} is finished"
              if not busy else "benchlab submit: nothing else to submit")
        return 0
    executor = submitit.AutoExecutor(folder=results / "logs" / "%j", cluster=args.executor)
    params = {"timeout_min": args.time, "name": args.name, "cpus_per_task": args.cpus_per_job}
    if args.gpus_per_job:
        params["gpus_per_node"] = args.gpus_per_job
    if args.train:
        params.update(nodes=args.nodes, tasks_per_node=args.tasks_per_node)
    if args.executor == "slurm":
        params["slurm_partition"] = args.partition
        params["slurm_additional_parameters"] = dict(kv.split("=", 1) for kv in args.slurm_option)
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    job_fn = ShardJob(str(results), pytest_args, args.shards, os.getcwd(),
                      entry=entry if args.train else None)
    with executor.batch():
        jobs = [executor.submit(job_fn, i) for i in todo]
    for i, job in zip(todo, jobs, strict=True):
        if hasattr(job, "cancel_at_deletion"):
            job.cancel_at_deletion(False)  # local jobs outlive this command
        (results / "jobs" / STATE.format(i=i)).unlink(missing_ok=True)
        write_json(results / "jobs" / f"job-{i}.json",
                   {"job_id": job.job_id, "executor": args.executor, "shard": i})
        what = f"{args.nodes * args.tasks_per_node} tasks" if args.train else \
            f"shard {i}/{args.shards}"
        print(f"{what}: job {job.job_id}, log {job.paths.stdout}")
    print(f"benchlab submit: {len(jobs)} jobs; follow with `benchlab status {results}`, merge "
          f"with `benchlab report {results / 'stores'}`")
    if not args.wait:
        return 0
    failed = 0
    for i, job in zip(todo, jobs, strict=True):
        try:
            job.results()  # every task's (a --train job has several)
        except Exception as e:  # submitit re-raises the job's error; report it per shard
            failed += 1
            print(f"shard {i}: failed ({str(e).strip().splitlines()[-1][:200]})")
    print(status_table(results))
    return 1 if failed else 0


def finished(results: Path, i: int) -> bool:
    return read_json(results / "jobs" / STATE.format(i=i)).get("exit") in (0, 5)


def status_table(results: Path) -> str:
    """Per shard: cases stored / collected, failures (junit), the last job and its state."""
    import xml.etree.ElementTree as ET

    from tabulate import tabulate

    from .store import ResultStore

    plan = read_json(results / "sweep.json")
    if not plan:
        raise BenchlabError(f"{results}: not a results folder of `benchlab submit` "
                            "(no sweep.json)")
    rows = []
    for i in range(1 if plan.get("train") else plan["shards"]):
        jobs = results / "jobs"
        job = read_json(jobs / f"job-{i}.json")
        total = (jobs / STATE.format(i=i)).with_suffix(".total")
        store = ResultStore(results / "stores" / f"shard-{i}.jsonl")
        done = len(store.latest()) if store.path.exists() else 0
        fails = "-"
        xml = (jobs / STATE.format(i=i)).with_suffix(".xml")
        if xml.exists():
            try:
                suite = ET.parse(xml).getroot().find("testsuite")
                fails = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            except (ET.ParseError, AttributeError, ValueError):
                fails = "?"
        state = "finished" if finished(results, i) else \
            "queued/running" if alive(job) else "failed" if (jobs / STATE.format(i=i)).exists() \
            else "stopped" if job else "not submitted"
        rows.append((i, done, total.read_text().strip() if total.exists() else "?", fails,
                     job.get("job_id", "-"), state))
    return tabulate(rows, headers=("shard", "stored", "cases", "failures", "job", "state"))
