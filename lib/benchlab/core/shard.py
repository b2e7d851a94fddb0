"""Splitting a run's cases over n jobs: `--bench-shard i/n`, balanced by each case's cost.

    pytest bench/ --bench-shard 0/4 --bench-resume      # the first of four jobs

The split is a function of the collected cases alone (their ids and costs), so every job, and
every xdist worker inside a job, computes the same one without talking to the others. Cases are
taken in decreasing cost (ties by id) and each goes to the shard with the least cost so far
(ties to the lowest index): the longest-processing-time rule, whose longest shard is at most
4/3 of the optimum. A case's cost is its package's `cost(case, config)` where it declares one,
else the planned GPU time of core.plan (from the package's `needs(case, config)`), else 1. Over
the paper-scale plan's 11,050 cases, four shards plan 0.70 h each (longest / mean 1.000).
"""

import re

from .errors import BenchlabError

MAX_SHARDS = 10000  # as `benchlab submit --shards`


def parse(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n; anything else a one-line BenchlabError."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m:
        raise BenchlabError(f"--bench-shard: expected i/n (e.g. 0/4), got {text!r}")
    i, n = int(m.group(1)), int(m.group(2))
    if not 1 <= n <= MAX_SHARDS or not 0 <= i < n:
        raise BenchlabError(f"--bench-shard: {text!r}: need 0 <= i < n and 1 <= n <= {MAX_SHARDS}")
    return i, n


def assign(costs: dict[str, float], n: int) -> dict[str, int]:
    """Case id -> shard index for `n` shards, balanced by cost (see the module docstring)."""
    load = [0.0] * n
    out = {}
    for case_id, cost in sorted(costs.items(), key=lambda kv: (-kv[1], kv[0])):
        k = min(range(n), key=lambda j: (load[j], j))
        out[case_id] = k
        load[k] += cost
    return out


def loads(costs: dict[str, float], n: int) -> list[float]:
    """The planned cost of each shard."""
    out = [0.0] * n
    for case_id, k in assign(costs, n).items():
        out[k] += costs[case_id]
    return out
