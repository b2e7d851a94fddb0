"""`benchlab compare BASE NEW`: the result metrics (not times) of two runs, case by case.

    benchlab compare reports/baseline/tiny.json .benchlab/store.jsonl

Each experiment declares in `METRICS` which metrics are results and how far they may move:
`None` (not a result: times, speed ratios; never compared), `0` (exact), a float (relative
tolerance) or `(rel, abs)`. Keys are metric names or fnmatch patterns; the first match wins, and
a recorded metric that matches none is an error, so nothing goes unchecked by accident. Times
are pytest-benchmark's business (`pytest-benchmark compare`). Cases are matched on experiment,
case and `result_hash` (what is computed); runs that differ only in threads, heap mode or device
(core.records.NOTE_SETTINGS) are compared, with the difference printed as a note.
"""

from collections import Counter
from dataclasses import dataclass

from . import ratios
from .errors import BenchlabError
from .experiments import load
from .records import NOTE_SETTINGS
from .store import record_key
from .tolerance import MISSING, tolerance, within


@dataclass
class Row:
    experiment: str
    case: str
    metric: str
    base: object
    new: object
    status: str  # moved | missing | new | config


def compare(base: list[dict], new: list[dict], *, exact: bool = False) -> tuple[list[Row], int]:
    """(rows that moved or do not match up, number of metric values compared). `exact`: every
    result metric (tolerance not None) must be equal, as two runs on one machine are."""
    def by_case(records):
        return {(r["experiment"], r["case"]): r for r in records}

    old, cur = by_case(base), by_case(new)
    declared = {exp: getattr(load(exp), "METRICS", None) for exp, _ in old.keys() | cur.keys()}
    for exp, metrics in declared.items():
        if not isinstance(metrics, dict):
            raise BenchlabError(f"experiment {exp!r} declares no METRICS (metric -> tolerance)")
    rows, compared = [], 0
    for key in sorted(old.keys() | cur.keys()):
        exp, case = key
        if key not in cur:
            rows.append(Row(exp, case, "*", "present", "absent", "missing"))
            continue
        if key not in old:
            rows.append(Row(exp, case, "*", "absent", "present", "new"))
            continue
        a, b = old[key], cur[key]
        if a["config_hash"] != b["config_hash"]:
            if a.get("result_hash") is None or a.get("result_hash") != b.get("result_hash"):
                rows.append(Row(exp, case, "config_hash", a["config_hash"], b["config_hash"],
                                "config"))
                continue
            # the same computation under other run settings (threads, heap, device): compared
            ra, rb = a.get("run") or {}, b.get("run") or {}
            rows.append(Row(exp, case, "run", settings(ra, rb), settings(rb, ra), "settings"))
        ma, mb = a.get("metrics") or {}, b.get("metrics") or {}
        for name in sorted(ma.keys() | mb.keys()):
            tol = tolerance(declared[exp], name, exp)
            if tol is None:
                continue
            tol = 0 if exact else tol
            va, vb = ma.get(name, MISSING), mb.get(name, MISSING)
            compared += 1
            if va is MISSING or vb is MISSING or not within(va, vb, tol):
                rows.append(Row(exp, case, name, _show(va), _show(vb), "moved"))
    return rows, compared


def _show(v):
    return "absent" if v is MISSING else v


def settings(run: dict, other: dict) -> str:
    """The run settings of `run` that differ from `other`'s, as 'threads=1 device=cpu'."""
    return " ".join(f"{k}={run.get(k)}" for k in NOTE_SETTINGS if run.get(k) != other.get(k))


FAILING = ("moved", "missing", "config")


def matched(base: list[dict], new: list[dict]) -> list[tuple[dict, dict]]:
    """(base, new) record pairs of one case computing the same thing (config or result hash)."""
    old = {(r["experiment"], r["case"]): r for r in base}
    out = []
    for b in new:
        a = old.get((b["experiment"], b["case"]))
        if a is not None and (a["config_hash"] == b["config_hash"] or (
                a.get("result_hash") is not None and a.get("result_hash") == b.get("result_hash"))):
            out.append((a, b))
    return out


def main(base_path, new_path, *, exact: bool = False, margin: float = ratios.DEFAULT_MARGIN,
         only=None) -> int:
    """Print what moved and the tracked speed ratios (core.ratios); 1 if a result moved, went
    missing or changed config, or a gated ratio regressed or broke its goal, else 0."""
    from tabulate import tabulate

    from .results import check_experiments, load_records

    base, new = load_records(base_path), load_records(new_path)
    if not new:
        raise BenchlabError(f"{new_path}: no benchlab records")
    check_experiments(base, base_path)
    modules = check_experiments(new, new_path)
    speed = ratios.check(matched(base, new), modules, margin=margin, only=only,
                         base_path=str(base_path), new_path=str(new_path))
    rows, compared = compare(base, new, exact=exact)
    bad = [r for r in rows if r.status in FAILING]
    notes = [r for r in rows if r.status == "settings"]
    shown = [r for r in rows if r.status != "settings"]
    if shown:
        print(tabulate([(r.status, r.experiment, r.case, r.metric, _short(r.base), _short(r.new))
                        for r in shown], headers=("status", "experiment", "case", "metric",
                                                   str(base_path), str(new_path))))
    for (was, now), n in sorted(Counter((r.base, r.new) for r in notes).items()):
        print(f"note: {n} cases ran with other settings ({was} in {base_path}, {now} in "
              f"{new_path}); their results are compared within tolerance")
    cases = len({record_key(r) for r in new})
    print(f"benchlab compare: {cases} cases, {compared} result values compared: "
          f"{sum(r.status == 'moved' for r in rows)} moved, "
          f"{sum(r.status == 'missing' for r in rows)} missing, "
          f"{sum(r.status == 'config' for r in rows)} with another config, "
          f"{sum(r.status == 'new' for r in rows)} new")
    if speed:
        print(ratios.show(speed))
    slow = [r for r in speed if r.status in ("regressed", "goal")]
    print(f"benchlab compare: {len(speed)} speed ratios checked (margin {margin}): "
          f"{sum(r.status == 'regressed' for r in speed)} regressed, "
          f"{sum(r.status == 'goal' for r in speed)} off their goal, "
          f"{sum(r.status == 'info' for r in speed)} off but not gated")
    return 1 if bad or slow else 0


def _short(v, width: int = 40) -> str:
    text = repr(v) if not isinstance(v, str) else v
    return text if len(text) <= width else text[: width - 3] + "..."
