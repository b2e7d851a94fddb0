"""Speed ratios as tracked metrics: what `benchlab compare` gates across commits and CPU models.

Absolute times mean little on a shared machine whose CPU model changes from run to run; the time
of a contender over an in-run reference, timed side by side in rotated rounds, does not move with
the machine. An experiment declares the ratios it tracks:

    RATIOS = {
        "router_vs_topk8": Ratio("router", "ratio_vs_topk_router", goal=1.5,
                                 interval="ratio_vs_topk_router_ci",
                                 contender="each BH router", reference="softmax + top-8"),
    }

Each record of the kind (and case pattern) carries the median paired ratio (`metric`) and, where
the measure computes one, its 95% bootstrap interval over rounds (`interval`, [lo, hi]; without it
the point counts as the interval). Ratios are compared between runs of the same run settings
(threads, device: core.records.NOTE_SETTINGS); across them they are shown, not gated. A ratio
has *regressed* when the new interval lies entirely
beyond the baseline's by more than the margin (direction "lower": new lo > base hi x (1 + margin);
"higher": new hi < base lo / (1 + margin)), and it *breaks its goal* when the whole new interval
is on the wrong side of the goal. `gate=False` ratios are shown, never failed: their spread across
CPU models is larger than any margin worth gating (say why beside the declaration).
"""

import fnmatch
from dataclasses import dataclass

from .errors import BenchlabError
from .records import NOTE_SETTINGS

DEFAULT_MARGIN = 0.5  # a 2x slowdown of a contender clears it; CPU-model drift (<= 1.3x) does not


@dataclass(frozen=True)
class Ratio:
    kind: str  # the record kind that measures it
    metric: str  # the median paired ratio in the record's metrics
    goal: float | None = None  # the bound the ratio must not cross (by its whole interval)
    direction: str = "lower"  # "lower": contender / reference time; "higher": a speedup
    interval: str | tuple | None = None  # metric holding [lo, hi], or the (lo, hi) metrics
    cases: str = "*"  # fnmatch pattern over the case ids it applies to
    contender: str = ""
    reference: str = ""
    gate: bool = True  # False: reported, never failed

    def __post_init__(self):
        if self.direction not in ("lower", "higher"):
            raise BenchlabError(f"Ratio {self.metric}: direction must be 'lower' or 'higher'")

    def applies(self, record: dict) -> bool:
        kind = record.get("kind")
        case_id = record["case"].removeprefix(f"{kind}[").removesuffix("]")
        return kind == self.kind and fnmatch.fnmatchcase(case_id, self.cases)

    def bounds(self, record: dict, where: str) -> tuple[float, float, float]:
        """(value, lo, hi) of this ratio in `record`; a one-line error if it is not there."""
        metrics = record.get("metrics") or {}
        value = metrics.get(self.metric)
        if not _number(value):
            raise BenchlabError(f"{where}: {record['case']}: no ratio {self.metric!r} (a baseline "
                                "from before ratios were tracked? rebuild it with `benchlab "
                                "baseline`)")
        if isinstance(self.interval, tuple):
            ci = [metrics.get(name) for name in self.interval]
        else:
            ci = metrics.get(self.interval) if self.interval else None
        if isinstance(ci, list) and len(ci) == 2 and all(map(_number, ci)):
            return float(value), float(min(ci)), float(max(ci))
        return float(value), float(value), float(value)

    def regressed(self, base: tuple, new: tuple, margin: float) -> bool:
        if self.direction == "lower":
            return new[1] > base[2] * (1 + margin)
        return new[2] < base[1] / (1 + margin)

    def breaks_goal(self, new: tuple) -> bool:
        if self.goal is None:
            return False
        return new[1] > self.goal if self.direction == "lower" else new[2] < self.goal


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def declared(module, experiment: str) -> dict[str, Ratio]:
    ratios = getattr(module, "RATIOS", {}) or {}
    for name, r in ratios.items():
        if not isinstance(r, Ratio):
            raise BenchlabError(f"{experiment}.RATIOS: {name}: expected a core.ratios.Ratio")
    return ratios


@dataclass
class RatioRow:
    experiment: str
    name: str
    case: str
    base: tuple  # (value, lo, hi)
    new: tuple
    status: str  # ok | regressed | goal | info (regressed or off goal, not gated)
    goal: float | None


def check(pairs, modules: dict, *, margin: float = DEFAULT_MARGIN, only=None, base_path="base",
          new_path="new") -> list[RatioRow]:
    """A row per tracked ratio of each matched (base, new) record pair. `only`: ratio names
    ("experiment.name" or "name") to check; an undeclared one is a BenchlabError."""
    if not 0 < margin < 1:
        raise BenchlabError(f"--margin: must be in (0, 1), got {margin}")
    table = {exp: declared(m, exp) for exp, m in modules.items()}
    if only:
        names = {f"{e}.{n}" for e, rs in table.items() for n in rs} | \
            {n for rs in table.values() for n in rs}
        unknown = sorted(set(only) - names)
        if unknown:
            raise BenchlabError(f"--ratios: {unknown[0]!r} is not declared (declared: "
                                f"{', '.join(sorted(n for n in names if '.' in n)) or 'none'})")
    rows = []
    for a, b in pairs:
        exp = b["experiment"]
        for name, ratio in table.get(exp, {}).items():
            if only and name not in only and f"{exp}.{name}" not in only:
                continue
            if not ratio.applies(b) or not _number((b.get("metrics") or {}).get(ratio.metric)):
                continue  # a case of the kind that does not measure this ratio
            base, new = ratio.bounds(a, base_path), ratio.bounds(b, new_path)
            bad = "regressed" if ratio.regressed(base, new, margin) else \
                "goal" if ratio.breaks_goal(new) else "ok"
            # timed under other threads or on another device, a ratio is another measurement
            # (the BH kernel runs on one thread, top-k on all): shown, not gated
            same = all((a.get("run") or {}).get(k) == (b.get("run") or {}).get(k)
                       for k in NOTE_SETTINGS)
            status = bad if (ratio.gate and same) or bad == "ok" else "info"
            rows.append(RatioRow(exp, name, b["case"], base, new, status, ratio.goal))
    return rows


def show(rows: list[RatioRow]) -> str:
    from tabulate import tabulate

    def fmt(t):
        return f"{t[0]:.3g} [{t[1]:.3g}, {t[2]:.3g}]"

    return tabulate([(r.status, r.experiment, r.name, r.case, fmt(r.base), fmt(r.new),
                      "" if r.goal is None else r.goal) for r in rows],
                    headers=("ratio", "experiment", "name", "case", "base", "new", "goal"))
