"""asv results that accumulate: every published run's results kept under reports/asv/<kind>/.

    python -m benchlab.core.asv_history keep .asv/results reports/asv      # this commit's results
    python -m benchlab.core.asv_history check .asv/html                     # graphs hold history

asv names a machine by its host and an environment by its interpreter's path, so two runs of one
commit on two CI machines (or a fresh clone in another folder) would draw separate lines. A kept
result is renamed to the machine's kind (KIND: what every developer and CI machine of this
project is; the CPU model changes between them, which the tracked ratios are robust to) and to
an environment named by the Python version, so every kept run lands on one line per benchmark.
`benchlab publish --asv .asv/results` keeps the current commit's; CI copies the kept ones beside
its own run, publishes, and checks that the graphs show more than one commit.
"""

import json
import platform
import sys
from pathlib import Path

from .errors import BenchlabError

KIND = "benchlab-cpu-2core"  # the project's machine kind (2 cores, 24 GiB, CPU model varies)
ENV = f"benchlab-py{sys.version_info.major}.{sys.version_info.minor}"


def normalized(result: dict, kind: str = KIND) -> dict:
    """An asv result file (format 2) with the machine and environment named by kind."""
    out = dict(result)
    version = ".".join(platform.python_version_tuple()[:2])
    out["env_name"] = ENV
    out["python"] = version
    out["params"] = {"machine": kind, "python": version}  # one line per benchmark, any host
    return out


def keep(results_dir, dest, *, kind: str = KIND, commit: str | None = None) -> list[Path]:
    """Copy the asv results of `commit` (default: every commit found) from `results_dir`
    (asv's results folder: <machine>/<hash>-<env>.json) into `dest/<kind>/`, normalized."""
    from .store import atomic_path

    results_dir, dest = Path(results_dir), Path(dest) / kind
    written = []
    for path in sorted(results_dir.glob("*/*.json")):
        if path.name == "machine.json":
            continue
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise BenchlabError(f"{path}: not an asv result ({e})") from None
        if not isinstance(result, dict) or "commit_hash" not in result:
            raise BenchlabError(f"{path}: commit_hash: missing; not an asv result file")
        if commit and not result["commit_hash"].startswith(commit):
            continue
        out = dest / f"{result['commit_hash'][:8]}-{ENV}.json"
        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(normalized(result, kind), sort_keys=True) + "\n")
        written.append(out)
    if written:
        machine = {"machine": kind, "os": platform.system(), "arch": platform.machine(),
                   "cpu": "2 cores, CPU model varies (AMD EPYC, Intel Xeon)", "num_cpu": "2",
                   "ram": "24 GiB", "version": 1}
        (dest / "machine.json").write_text(json.dumps(machine, indent=1, sort_keys=True) + "\n")
    return written


def commits_per_graph(html_dir) -> dict[str, int]:
    """{graph file: number of commits with a value} of asv's published html."""
    out = {}
    for path in Path(html_dir).glob("graphs/**/*.json"):
        try:
            points = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(points, list):
            out[str(path.relative_to(html_dir))] = sum(
                1 for p in points if isinstance(p, list) and len(p) > 1 and p[1] is not None)
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchlab.core.asv_history")
    sub = parser.add_subparsers(dest="command", required=True)
    k = sub.add_parser("keep", help="normalize and copy asv results into a kept folder")
    k.add_argument("results"), k.add_argument("dest")
    k.add_argument("--commit", default=None), k.add_argument("--kind", default=KIND)
    p = sub.add_parser("previous", help="the newest kept commit other than --not (for asv compare)")
    p.add_argument("results"), p.add_argument("--not", dest="exclude", default="")
    p.add_argument("--kind", default=KIND)
    c = sub.add_parser("check", help="the ratio graphs of asv's html show more than one commit")
    c.add_argument("html"), c.add_argument("--pattern", default="ratios.")
    c.add_argument("--min-commits", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        if args.command == "keep":
            written = keep(args.results, args.dest, kind=args.kind, commit=args.commit)
            print(f"kept {len(written)} asv result files under {Path(args.dest) / args.kind}")
            return 0
        if args.command == "previous":
            kept = sorted((json.loads(p.read_text()).get("date", 0), json.loads(
                p.read_text())["commit_hash"]) for p in (Path(args.results) / args.kind).glob(
                "*.json") if p.name != "machine.json")
            kept = [c for _, c in kept if not (args.exclude and c.startswith(args.exclude))]
            if not kept:
                raise BenchlabError(f"{args.results}: no kept asv results of another commit")
            print(kept[-1])
            return 0
        graphs = {g: n for g, n in commits_per_graph(args.html).items() if args.pattern in g}
        if not graphs:
            raise BenchlabError(f"{args.html}: no graphs matching {args.pattern!r}")
        short = {g: n for g, n in graphs.items() if n < args.min_commits}
        print(f"{len(graphs)} graphs of {args.pattern!r}: commits per graph "
              f"{min(graphs.values())}-{max(graphs.values())}")
        if short:
            raise BenchlabError(f"{args.html}: {len(short)} graphs with fewer than "
                                f"{args.min_commits} commits, e.g. {sorted(short)[0]}")
        return 0
    except BenchlabError as e:
        sys.stderr.write(f"benchlab: error: {e}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
