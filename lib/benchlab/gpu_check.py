"""`benchlab gpu-check`: the bench suite at paper scale, smoke budget, on one machine, summarized.

    benchlab gpu-check --out DIR [--device cuda|cpu] [--models DIR] [--scale S] [--budget B]
                       [--tests PATH ...] [-k EXPR] [--pytest-args "ARGS"]
    bash scripts/gpu_check.sh            # a fresh GPU machine: venv, install, this command

Runs, with this interpreter (sys.executable) in a subprocess:

    pytest bench/ --bench-scale paper --bench-budget smoke --bench-device DEVICE
        [--bench-models DIR] --benchmark-json DIR/gpu.json --bench-store DIR/store.jsonl
        --bench-reports DIR/reports -p benchlab.gpu_check

and writes DIR/summary.md: the machine (device name, torch and CUDA versions), per experiment
the cases passed, skipped (with the skip reasons) and failed (with the error), and the declared
speed ratios (core.ratios.declared) of the records this run stored, each with its interval.
Exit status 1 when any case failed or pytest itself failed (collection error, no tests), else 0.
DIR/pytest.log is pytest's output; DIR/outcomes.json each test's outcome (written by this
module's pytest hooks, loaded with `-p benchlab.gpu_check`, only under this command). The
outputs of a previous check in DIR (gpu.json, store.jsonl, outcomes.json) are replaced.
"""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

OUTCOMES_ENV = "BENCHLAB_GPU_CHECK_OUTCOMES"
FRESH = ("gpu.json", "store.jsonl", "outcomes.json", "summary.md")


# -- pytest hooks: active only under `-p benchlab.gpu_check` (pytest then validates every
# module-level name starting with `pytest_` as a hook: no other such names here) ----------------

_EXPERIMENT: dict[str, str] = {}
_OUTCOMES: dict[str, dict] = {}


def pytest_itemcollected(item):
    mark = item.get_closest_marker("experiment")
    if mark and mark.args:
        _EXPERIMENT[item.nodeid] = mark.args[0]


def _message(report) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr or "")
    return " ".join(text.split())[:400]


def pytest_runtest_logreport(report):
    """One outcome per test: a failed or skipped setup, the call, or a failed teardown."""
    if report.when == "call" or (report.when == "setup" and not report.passed) or \
            (report.when == "teardown" and report.failed):
        old = _OUTCOMES.get(report.nodeid)
        if old is not None and old["outcome"] == "failed":
            return
        _OUTCOMES[report.nodeid] = {"outcome": report.outcome, "when": report.when,
                                    "reason": "" if report.passed else _message(report),
                                    "duration": round(report.duration, 3)}


def pytest_collectreport(report):
    if report.failed:
        _OUTCOMES[report.nodeid or "<collection>"] = {
            "outcome": "failed", "when": "collect", "reason": _message(report), "duration": 0}


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get(OUTCOMES_ENV)
    if not path or hasattr(session.config, "workerinput"):
        return
    rows = {nodeid: {**o, "experiment": _EXPERIMENT.get(nodeid) or experiment_of_path(nodeid)}
            for nodeid, o in _OUTCOMES.items()}
    Path(path).write_text(json.dumps({"exitstatus": int(exitstatus), "tests": rows},
                                     indent=1, sort_keys=True) + "\n")


def experiment_of_path(nodeid: str) -> str:
    """bench/test_long_exposure_ops.py::... -> long_exposure (the longest known experiment
    name the module's name starts with), else the module's name."""
    from .core.experiments import known

    stem = Path(nodeid.split("::")[0]).stem.removeprefix("test_")
    names = sorted((n for n in known() if stem == n or stem.startswith(n + "_")), key=len)
    return names[-1] if names else stem


# -- the command --------------------------------------------------------------------------------

def command_of(args, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", *args.tests, "--bench-scale", args.scale,
           "--bench-budget", args.budget, "--bench-device", args.device,
           "--benchmark-json", str(out / "gpu.json"), "--bench-store", str(out / "store.jsonl"),
           "--bench-reports", str(out / "reports"), "-p", "benchlab.gpu_check",
           "-p", "no:cacheprovider", "-rfEs"]
    if args.models:
        cmd += ["--bench-models", args.models]
    if args.k:
        cmd += ["-k", args.k]
    return cmd + shlex.split(args.pytest_args or "")


def run_pytest(cmd: list[str], out: Path) -> int:
    """Run `cmd`, its output to this terminal and to out/pytest.log; its exit status."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{OUTCOMES_ENV: str(out / "outcomes.json")})
    with open(out / "pytest.log", "w") as log:
        log.write("$ " + shlex.join(cmd) + "\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                text=True, bufsize=1)
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
        return proc.wait()


def machine(device: str) -> dict[str, str]:
    import platform

    import torch

    info = {"requested device": device, "torch": torch.__version__,
            "python": platform.python_version(), "host": platform.node()}
    if torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name(0)
        info["CUDA (torch build)"] = str(torch.version.cuda)
        info["GPUs visible"] = str(torch.cuda.device_count())
    else:
        info["device"] = f"no CUDA device (CPU: {platform.processor() or platform.machine()})"
    return info


def ratio_rows(store: Path) -> list[tuple]:
    """(experiment, ratio, case, value, lo, hi, goal, note) of every declared ratio of the
    store's records."""
    from .core import experiments
    from .core.errors import BenchlabError
    from .core.ratios import declared
    from .core.results import load_records

    if not store.is_file() or store.stat().st_size == 0:
        return []
    rows = []
    for rec in sorted(load_records(store), key=lambda r: (r["experiment"], r["case"])):
        exp = rec["experiment"]
        for name, ratio in declared(experiments.load(exp), exp).items():
            if not ratio.applies(rec):
                continue
            try:
                value = ratio.bounds(rec, str(store))
            except BenchlabError:
                continue  # a case of the kind that does not measure this ratio
            note = "off goal" if ratio.breaks_goal(value) else ""
            rows.append((exp, name, rec["case"], *value, ratio.goal, note))
    return rows


def _case(nodeid: str) -> str:
    return nodeid.split("::")[-1]


def summary(out: Path, info: dict, cmd: list[str], rc: int) -> tuple[str, int]:
    """The markdown summary and the number of failed tests."""
    data = {}
    if (out / "outcomes.json").is_file():
        data = json.loads((out / "outcomes.json").read_text())
    tests = data.get("tests", {})
    lines = ["# benchlab gpu-check", "", "## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in info.items()]
    lines += ["", f"pytest exit status {rc}; command:", "", "```", shlex.join(cmd), "```", ""]
    by_exp: dict[str, dict[str, list]] = {}
    for nodeid, o in sorted(tests.items()):
        by_exp.setdefault(o["experiment"], {}).setdefault(o["outcome"], []).append((nodeid, o))
    lines += ["## Cases", "", "| experiment | passed | skipped | failed |", "|---|---|---|---|"]
    for exp, groups in sorted(by_exp.items()):
        lines.append(f"| {exp} | {len(groups.get('passed', []))} | "
                     f"{len(groups.get('skipped', []))} | {len(groups.get('failed', []))} |")
    if not tests:
        lines.append("| (no test outcomes: pytest did not run the tests; see pytest.log) "
                     "| | | |")
    failed = sum(len(g.get("failed", [])) for g in by_exp.values())
    for exp, groups in sorted(by_exp.items()):
        lines += ["", f"### {exp}", ""]
        if groups.get("passed"):
            lines.append("Passed: " + ", ".join(f"`{_case(n)}` ({o['duration']:.1f} s)"
                                                for n, o in groups["passed"]))
        reasons: dict[str, list[str]] = {}
        for n, o in groups.get("skipped", []):
            reasons.setdefault(o["reason"], []).append(_case(n))
        for reason, cases in reasons.items():
            lines.append(f"\nSkipped ({len(cases)}): {', '.join(f'`{c}`' for c in cases[:6])}"
                         f"{' ...' if len(cases) > 6 else ''}: {reason}")
        for n, o in groups.get("failed", []):
            lines.append(f"\n**Failed** `{n}` ({o['when']}): {o['reason']}")
    lines += ["", "## Speed ratios", ""]
    try:
        rows = ratio_rows(out / "store.jsonl")
    except Exception as e:  # the summary still gets written: say why the ratios are missing
        rows, lines = [], lines + [f"(records unreadable: {e})"]
    if rows:
        lines += ["| experiment | ratio | case | value | interval | goal | |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {e} | {n} | `{c}` | {v:.3g} | [{lo:.3g}, {hi:.3g}] | "
                  f"{'' if g is None else g} | {note} |" for e, n, c, v, lo, hi, g, note in rows]
    else:
        lines.append("(no declared speed ratio among this run's records)")
    return "\n".join(lines) + "\n", failed


def parse(argv):
    import argparse

    from .core.options import output_dir
    from .core.scale import BUDGETS, SCALES

    p = argparse.ArgumentParser(prog="benchlab gpu-check", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=output_dir, metavar="DIR",
                   help="gpu.json, store.jsonl, reports/, pytest.log, summary.md")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                   help="--bench-device (default: cuda)")
    p.add_argument("--models", metavar="DIR", default=None,
                   help="--bench-models: DIR/<org>--<name>/ weights (default: $BENCHLAB_MODELS)")
    p.add_argument("--scale", default="paper", choices=SCALES, help="(default: paper)")
    p.add_argument("--budget", default="smoke", choices=BUDGETS, help="(default: smoke)")
    p.add_argument("--tests", nargs="+", default=["bench/"], metavar="PATH",
                   help="pytest paths (default: bench/)")
    p.add_argument("-k", default=None, metavar="EXPR", help="pytest -k selection")
    p.add_argument("--pytest-args", default=None, metavar="ARGS",
                   help='more pytest arguments, one string (e.g. "--bench-threads 1 -x")')
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in FRESH:  # this check's own outputs: a new check starts them afresh
        (out / name).unlink(missing_ok=True)
    if args.models and not Path(args.models).is_dir():
        sys.stderr.write(f"benchlab gpu-check: error: --models {args.models}: no such folder\n")
        return 2
    cmd = command_of(args, out)
    rc = run_pytest(cmd, out)
    text, failed = summary(out, machine(args.device), cmd, rc)
    (out / "summary.md").write_text(text)
    print(f"\nbenchlab gpu-check: {failed} failed, pytest exit status {rc}; "
          f"summary: {out / 'summary.md'}")
    return 1 if failed or rc != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
