"""How far a result metric may move: each experiment's `METRICS` (name or fnmatch pattern ->
tolerance) read for one metric, and the comparison of two values under it. `None` means "not a
result" (times, speed ratios), `0` exact, a float a relative tolerance, `(rel, abs)` both."""

import fnmatch
import math

from .errors import BenchlabError

MISSING = object()


def tolerance(metrics: dict, name: str, experiment: str):
    if name in metrics:
        return metrics[name]
    for pattern, tol in metrics.items():
        if fnmatch.fnmatchcase(name, pattern):
            return tol
    raise BenchlabError(f"{experiment}.METRICS: metric {name!r} is not declared "
                        "(give it a tolerance, or None if it is not a result)")


def within(a, b, tol) -> bool:
    """Is `b` within `tol` of `a`? Numbers by tolerance, lists element-wise, mappings key by key,
    booleans only equal to booleans (True is not 1), the rest by ==."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(within(x, y, tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(within(a[k], b[k], tol) for k in a)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    num = (int, float)
    if isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool | str):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        rel, abs_ = (tol, 0.0) if isinstance(tol, int | float) else tol
        return abs(a - b) <= abs_ + rel * max(abs(a), abs(b))
    return a == b
