"""`benchlab` command line: saved results here, each experiment's own commands in its `cli` module.

    benchlab report out.json              # rebuild every report from a --benchmark-json file ...
    benchlab report .benchlab/store.jsonl # ... or from a result store (into .benchlab/reports)
    benchlab publish out.json --scale tiny   # refresh the committed reports/ of that scale
    benchlab compare BASE NEW             # result metrics of two runs, within METRICS tolerances
    benchlab baseline STORE               # rewrite reports/baseline/tiny.json (say why in git)
    benchlab submit --executor slurm --shards 4 --results DIR -- bench/   # one job per shard
    benchlab status DIR                   # per-shard progress of a submitted sweep
    benchlab plan --scale paper           # cases, weights, data, memory, GPU time (core.plan)
    benchlab gpu-check --out DIR          # the paper smoke suite on a GPU + summary.md
    benchlab zoo verify | pin             # the pinned tiny-scale artifacts (benchlab.zoo.pin)
    benchlab prepare ...                  # local text/JSONL -> token files (benchlab.zoo.cli)
    benchlab layer-selection run ...      # experiment commands: benchlab.<experiment>.cli.main
"""

import argparse
import difflib
import importlib
import sys
from pathlib import Path

from .core import experiments
from .core.errors import BenchlabError, fail
from .core.options import bounded, one_line_usage_errors, output_dir, output_file
from .core.ratios import DEFAULT_MARGIN
from .core.results import check_experiments, load_records, write_baseline

BASELINE = "reports/baseline/tiny.json"
BASELINE_COMMAND = ("pytest bench -n 2 --bench-threads 1 --benchmark-disable --no-bench-report "
                    "--bench-store /tmp/baseline.jsonl && benchlab baseline /tmp/baseline.jsonl")


def cmd_report(args) -> int:
    records = load_records(args.path)
    if not records:
        raise BenchlabError(f"{args.path}: no benchlab records")
    check_experiments(records, args.path)
    done = experiments.report_all(records, Path(args.outdir))
    print(f"wrote reports for {', '.join(done)} under {args.outdir}")
    return 0


def cmd_publish(args) -> int:
    """Write reports/<experiment>/ from records of one scale, for the experiments that publish
    that scale (their PUBLISH_SCALES, default tiny): paper-scale reports stay paper scale."""
    records = [r for r in load_records(args.path) if r.get("scale") == args.scale]
    if not records:
        raise BenchlabError(f"{args.path}: no records at scale {args.scale!r}")
    modules = check_experiments(records, args.path)
    chosen, skipped = [], set()
    for rec in records:
        scales = getattr(modules[rec["experiment"]], "PUBLISH_SCALES", ("tiny",))
        (chosen.append(rec) if args.scale in scales else skipped.add(rec["experiment"]))
    for exp in sorted(skipped):
        print(f"benchlab publish: {exp}: its committed reports are not {args.scale} scale; "
              "left as they are", file=sys.stderr)
    if chosen:
        done = experiments.report_all(chosen, Path(args.outdir))
        print(f"published {args.scale}-scale reports of {', '.join(done)} under {args.outdir}")
    if args.asv:  # this commit's asv results join the kept history (core.asv_history)
        from .core.asv_history import keep
        from .core.provenance import git_commit

        kept = keep(args.asv, Path(args.outdir) / "asv", commit=git_commit())
        print(f"kept {len(kept)} asv result files of this commit under {args.outdir}/asv")
    return 0


def cmd_compare(args) -> int:
    from .core.compare import main as compare

    return compare(args.base, args.new, exact=args.exact, margin=args.margin, only=args.ratios)


def cmd_baseline(args) -> int:
    """Rewrite the baseline from a run, only once the run is known good: every record valid and
    declared, and every case the current baseline has present (or dropped by name)."""
    import fnmatch

    records = [r for r in load_records(args.path) if r.get("scale") == "tiny"]
    if not records:
        raise BenchlabError(f"{args.path}: no tiny-scale records")
    check_experiments(records, args.path)
    out = Path(args.output)
    if out.exists():
        old = load_records(out)
        have = {(r["experiment"], r["case"]) for r in records}
        lost = sorted(f"{e}/{c}" for e, c in {(r["experiment"], r["case"]) for r in old} - have
                      if not any(fnmatch.fnmatchcase(f"{e}/{c}", p) for p in args.drop))
        if lost:
            raise fail(str(args.path), "records",
                       f"lacks {len(lost)} of the {len(old)} cases in {out} (first: {lost[0]}); "
                       "run them, or drop them by name with --drop EXPERIMENT/CASE (patterns "
                       "allowed); the baseline is unchanged")
    path = write_baseline(records, out, command=BASELINE_COMMAND)
    print(f"wrote {len(records)} records to {path}; commit it with the reason it moved")
    return 0


def cmd_submit(args, rest: list[str]) -> int:
    from .core.submit import submit

    if not rest:
        raise BenchlabError("submit: give the pytest arguments after `--` (e.g. -- bench/)")
    return submit(args, rest, entry=main)


def cmd_status(args) -> int:
    from .core.submit import status_table

    print(status_table(Path(args.results)))
    return 0


def submit_parser(sub) -> None:
    p = sub.add_parser("submit", help="a sweep as one job per shard (submitit: slurm or local)")
    p.add_argument("--executor", required=True, choices=("slurm", "local"))
    p.add_argument("--shards", type=bounded(int, lo=1, hi=10000), default=1)
    p.add_argument("--results", required=True, type=output_dir, metavar="DIR",
                   help="shared results folder: stores/, logs/, jobs/, reports/")
    p.add_argument("--wait", action="store_true", help="wait for the jobs and show their status")
    p.add_argument("--gpus-per-job", type=bounded(int, lo=0, hi=64), default=0)
    p.add_argument("--cpus-per-job", type=bounded(int, lo=1, hi=1024), default=None)
    p.add_argument("--partition", default=None, help="Slurm partition")
    p.add_argument("--time", type=bounded(int, lo=1), default=60, metavar="MIN",
                   help="time limit of each job in minutes (default: %(default)s)")
    p.add_argument("--name", default="benchlab", help="job name (default: %(default)s)")
    p.add_argument("--slurm-option", nargs="+", default=[], metavar="K=V", type=key_value,
                   help="more sbatch options, e.g. account=lab qos=high")
    p.add_argument("--train", action="store_true",
                   help="run a benchlab command (after --) in every task of one job, with "
                        "torch.distributed's environment from Slurm's")
    p.add_argument("--nodes", type=bounded(int, lo=1, hi=4096), default=1)
    p.add_argument("--tasks-per-node", type=bounded(int, lo=1, hi=64), default=1)
    st = sub.add_parser("status", help="per-shard progress of a `benchlab submit` results folder")
    st.add_argument("results", metavar="DIR")


def key_value(text: str) -> str:
    import argparse

    if "=" not in text or not text.split("=", 1)[0]:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return text


def main(argv: list[str] | None = None) -> int:
    """`benchlab ARGV`: the exit status; bad input is one stderr line (`_guard`, and argparse's
    usage errors through `one_line_usage_errors`), never a traceback."""
    argv = sys.argv[1:] if argv is None else argv
    with one_line_usage_errors():
        return _main([str(a) for a in argv])


def _main(argv: list[str]) -> int:
    rest: list[str] = []
    if argv and argv[0] == "submit" and "--" in argv:
        cut = argv.index("--")
        argv, rest = argv[:cut], argv[cut + 1:]
    if argv and argv[0] in ("plan", "gpu-check"):  # benchlab.core.plan, benchlab.gpu_check
        module = importlib.import_module(
            {"plan": "benchlab.core.plan", "gpu-check": "benchlab.gpu_check"}[argv[0]])
        return _guard(lambda: module.main(argv[1:]))
    if argv and argv[0] in ("prepare", "zoo"):
        module = importlib.import_module("benchlab.zoo." + {"prepare": "cli"}.get(argv[0], "pin"))
        return _guard(lambda: module.main(argv[1:]))
    if argv and argv[0].replace("-", "_") in experiments.known():
        name = argv[0].replace("-", "_")
        module = importlib.import_module(f"{experiments.known()[name]}.cli")
        return _guard(lambda: module.main(argv[1:]))
    commands = ["report", "publish", "compare", "baseline", "submit", "status", "zoo", "prepare",
                "plan", "gpu-check",
                *(n.replace("_", "-") for n in experiments.known())]
    if argv and not argv[0].startswith("-") and argv[0] not in commands:
        near = difflib.get_close_matches(argv[0], commands, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        return error(f"unknown command {argv[0]!r} (commands: {', '.join(commands)}){hint}")
    parser = argparse.ArgumentParser(prog="benchlab", description=__doc__.splitlines()[0],
                                     epilog="commands: " + ", ".join(commands))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    rep = sub.add_parser("report", help="rebuild reports from a benchmark JSON or result store")
    rep.add_argument("path", help="--benchmark-json output, a .jsonl result store or a baseline")
    rep.add_argument("--outdir", default=".benchlab/reports", type=output_dir,
                     help="(default: %(default)s)")
    pub = sub.add_parser("publish", help="refresh the committed reports/ from saved results")
    pub.add_argument("path", help="--benchmark-json output or a .jsonl result store")
    pub.add_argument("--scale", required=True, choices=("tiny", "small", "paper"),
                     help="the scale whose records are published")
    pub.add_argument("--outdir", default="reports", type=output_dir,
                     help="(default: %(default)s)")
    pub.add_argument("--asv", metavar="RESULTS", default=None,
                     help="also keep this commit's asv results from RESULTS (.asv/results) "
                          "under OUTDIR/asv, the history asv publish draws")
    cmp_ = sub.add_parser("compare", help="result metrics of two runs, case by case")
    cmp_.add_argument("base", help="baseline: benchmark JSON, result store or baseline file")
    cmp_.add_argument("new", help="the run to check, in any of those forms")
    cmp_.add_argument("--exact", action="store_true",
                      help="every result metric bit for bit (two runs on one machine)")
    cmp_.add_argument("--margin", type=bounded(float, lo=1e-9, hi=1 - 1e-9),
                      default=DEFAULT_MARGIN,
                      help="a speed ratio regressed when its interval lies beyond the base's by "
                           "more than this fraction (default: %(default)s)")
    cmp_.add_argument("--ratios", nargs="+", metavar="NAME",
                      help="check only these declared ratios (EXPERIMENT.NAME or NAME)")
    base = sub.add_parser("baseline", help=f"rewrite {BASELINE} from a run's results")
    base.add_argument("path", help="a .jsonl result store or benchmark JSON of a tiny run")
    base.add_argument("--output", default=BASELINE, type=output_file,
                      help="(default: %(default)s)")
    base.add_argument("--drop", nargs="+", action="extend", default=[],
                      metavar="EXPERIMENT/CASE",
                      help="cases of the current baseline that the new one may lack (fnmatch "
                           "patterns, where [ ] is a character class: 'lm_timing/step?*'); "
                           "repeat it or list several")
    submit_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "submit":
        return _guard(lambda: cmd_submit(args, rest))
    run = {"report": cmd_report, "publish": cmd_publish, "compare": cmd_compare,
           "baseline": cmd_baseline, "status": cmd_status}[args.command]
    return _guard(lambda: run(args))


def error(message: str) -> int:
    """Write 'benchlab: error: <message>' to stderr in one write (print's separate newline let
    the lines of two torchrun ranks, unbuffered under PYTHONUNBUFFERED, run into one) -> 2."""
    sys.stderr.write(f"benchlab: error: {message}\n")
    sys.stderr.flush()
    return 2


def _guard(run) -> int:
    try:
        return run() or 0
    except BenchlabError as e:
        return error(str(e))


if __name__ == "__main__":
    sys.exit(main())
