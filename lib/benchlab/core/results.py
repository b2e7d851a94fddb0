"""Saved results, read back: a result store, a pytest-benchmark JSON, or a baseline file.

    benchlab report out.json | .benchlab/store.jsonl | reports/baseline/tiny.json

Every record is checked (core.store.check_record); a malformed one is a one-line BenchlabError
naming the file and the record, never a traceback.
"""

import json
from pathlib import Path

from .errors import BenchlabError, fail, read_json
from .store import ResultStore, atomic_path, check_record, record_key


def newest(records: list[dict]) -> list[dict]:
    """Of a store's records: those of each experiment's newest package version (that of its last
    record), the last one per case."""
    version = {r["experiment"]: r.get("package_version", r["code_version"]) for r in records}
    out = {(r["experiment"], r["case"], r["config_hash"]): r for r in records
           if r.get("package_version", r["code_version"]) == version[r["experiment"]]}
    return list(out.values())


def load_records(path) -> list[dict]:
    """Records from a result store (.jsonl: see `newest`), a pytest-benchmark JSON (each
    benchmark's extra_info.benchlab), a baseline JSON ({"records": [...]}), or a folder of
    stores (every *.jsonl under it, as the jobs of a sharded sweep leave them: see `merge`)."""
    path = Path(path)
    if path.is_dir():
        stores = sorted(p for p in path.rglob("*.jsonl") if p.is_file())
        if not stores:
            raise BenchlabError(f"{path}: no result stores (*.jsonl) in this folder")
        return merge([(p, newest(ResultStore(p).read(must_exist=True))) for p in stores])
    if not path.is_file():
        raise BenchlabError(f"{path}: no such file")
    if path.suffix == ".jsonl":
        return newest(ResultStore(path).read(must_exist=True))
    data = read_json(path)
    if isinstance(data.get("records"), list):
        items = [(f"records[{i}]", r) for i, r in enumerate(data["records"])]
    elif isinstance(data.get("benchmarks"), list):
        items = [(f"benchmarks[{i}].extra_info.benchlab", _extra_info(b).get("benchlab"))
                 for i, b in enumerate(data["benchmarks"])]
        items = [(where, r) for where, r in items if r is not None]
        resumed = data.get("benchlab_resumed") or []  # cases skipped under --bench-resume
        items += [(f"benchlab_resumed[{i}]", r) for i, r in enumerate(resumed)]
    else:
        raise fail(str(path), "benchmarks",
                   "missing; not a pytest-benchmark JSON, a result store or a baseline")
    records = []
    for where, rec in items:
        try:
            records.append(check_record(rec))
        except ValueError as e:
            raise fail(str(path), where, f"malformed record ({e})") from None
    return records


def merge(sources: list[tuple[Path, list[dict]]]) -> list[dict]:
    """The records of several stores as one run: a case stored by two of them (same experiment,
    case and config hash) is kept once if their result metrics agree within the experiment's
    METRICS tolerances, else a one-line BenchlabError names both files."""
    from .experiments import load
    from .tolerance import MISSING, tolerance, within

    seen: dict[tuple, tuple[Path, dict]] = {}
    for path, records in sources:
        for rec in records:
            key = (rec["experiment"], rec["case"], rec["config_hash"])
            if key in seen:
                other_path, other = seen[key]
                declared = getattr(load(rec["experiment"]), "METRICS", {})
                a, b = other.get("metrics") or {}, rec.get("metrics") or {}
                for name in sorted(a.keys() | b.keys()):
                    tol = tolerance(declared, name, rec["experiment"])
                    if tol is not None and not within(a.get(name, MISSING),
                                                      b.get(name, MISSING), tol):
                        raise fail(str(path), rec["case"],
                                   f"stored in {other_path} too, with another {name} "
                                   f"({a.get(name)!r} vs {b.get(name)!r}); remove one")
            seen[key] = (path, rec)
    return [rec for _, rec in seen.values()]


def _extra_info(benchmark) -> dict:
    """A benchmark entry's extra_info, or {} where the entry or its extra_info is no mapping."""
    info = benchmark.get("extra_info") if isinstance(benchmark, dict) else None
    return info if isinstance(info, dict) else {}


def check_experiments(records: list[dict], path) -> dict:
    """Each record's experiment is registered and declares every metric it carries in METRICS
    (core.tolerance.tolerance), else a one-line BenchlabError naming `path` and the record; the
    loaded experiment modules by name."""
    from .experiments import known, load
    from .tolerance import tolerance

    modules, names = {}, known()
    for i, rec in enumerate(records):
        exp = rec["experiment"]
        if exp not in names:
            raise fail(str(path), f"records[{i}].experiment",
                       f"unknown experiment {exp!r} (known: {', '.join(sorted(names))})")
        modules.setdefault(exp, load(exp))
        declared = getattr(modules[exp], "METRICS", None)
        if not isinstance(declared, dict):
            raise fail(str(path), f"records[{i}]", f"experiment {exp!r} declares no METRICS")
        for name in rec.get("metrics") or {}:
            try:
                tolerance(declared, name, exp)
            except BenchlabError as e:
                raise fail(str(path), f"records[{i}] ({rec['case']})", str(e)) from None
    return modules


def write_baseline(records: list[dict], path, *, command: str) -> Path:
    """The result metrics of `records` (no times, no machine facts) as a baseline file."""
    keep = ("experiment", "case", "kind", "scale", "config_hash", "result_hash", "code_version",
            "package_version", "config", "inputs", "run", "metrics")  # config: reports need it
    rows = sorted(({k: r.get(k) for k in keep} for r in records), key=record_key)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"command": command, "records": rows}, indent=0,
                                  sort_keys=True) + "\n")
    return path
