"""`benchlab` command line: `report` here, each experiment's own commands in its `cli` module.

    benchlab report out.json              # rebuild every report from a --benchmark-json file
    benchlab report .benchlab/store.jsonl # ... or from a result store
    benchlab prepare ...                  # local text/JSONL -> token files (benchlab.zoo.cli)
    benchlab layer-selection run ...      # experiment commands: benchlab.<experiment>.cli.main
"""

import argparse
import importlib
import sys
from pathlib import Path

from .core import experiments
from .core.errors import BenchlabError, read_json
from .core.store import ResultStore


def load_records(path: Path) -> list[dict]:
    """Records from a pytest-benchmark JSON file or a result store (latest of each key)."""
    if not path.exists():
        raise BenchlabError(f"{path}: no such file")
    if path.suffix == ".jsonl":
        records = list(ResultStore(path).read(must_exist=True))
        latest = {}
        for rec in records:  # the newest code version of each experiment, last record per key
            latest.setdefault(rec["experiment"], {})
            latest[rec["experiment"]].setdefault(rec["code_version"], {})[
                (rec["case"], rec["config_hash"])] = rec
        return [r for versions in latest.values() for r in list(versions.values())[-1].values()]
    data = read_json(path)
    if not isinstance(data.get("benchmarks"), list):
        raise BenchlabError(f"{path}: benchmarks: missing; not a pytest-benchmark JSON file")
    records = []
    for i, bench in enumerate(data["benchmarks"]):
        rec = (bench.get("extra_info") or {}).get("benchlab")
        if rec is None:
            continue
        if not isinstance(rec, dict) or "experiment" not in rec or "case" not in rec:
            raise BenchlabError(f"{path}: benchmarks[{i}].extra_info.benchlab: malformed record")
        records.append(rec)
    return records


def cmd_report(args) -> int:
    records = load_records(Path(args.path))
    if not records:
        raise BenchlabError(f"{args.path}: no benchlab records found")
    done = experiments.report_all(records, Path(args.outdir))
    print(f"wrote reports for {', '.join(done)} under {args.outdir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "prepare":
        module = importlib.import_module("benchlab.zoo.cli")
        return _guard(lambda: module.main(argv[1:]))
    if argv and argv[0].replace("-", "_") in experiments.known():
        name = argv[0].replace("-", "_")
        module = importlib.import_module(f"{experiments.known()[name]}.cli")
        return _guard(lambda: module.main(argv[1:]))
    parser = argparse.ArgumentParser(prog="benchlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True,
                                metavar="{report,prepare," + ",".join(
                                    n.replace("_", "-") for n in experiments.known()) + "}")
    rep = sub.add_parser("report", help="rebuild reports from a benchmark JSON or result store")
    rep.add_argument("path", help="--benchmark-json output or a .jsonl result store")
    rep.add_argument("--outdir", default="reports", help="(default: %(default)s)")
    args = parser.parse_args(argv)
    return _guard(lambda: cmd_report(args))


def _guard(run) -> int:
    try:
        return run() or 0
    except BenchlabError as e:
        print(f"benchlab: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
