"""The harness every experiment shares: scales, timing, records and store, reports, statistics.

It never imports an experiment; experiments are found by name (core.experiments).
"""

from .errors import BenchlabError, fail, read_json
from .provenance import code_version, config_hash, git_commit, to_jsonable
from .records import make_record, run_settings
from .registry import Registry
from .scale import SCALES, check_scale, config_for
from .store import ResultStore, record_key
from .timing import (
    Timer,
    interleave,
    measure,
    measure_side_by_side,
    resolve_device,
    synced,
    synchronize,
    threads,
    time_fn,
)

__all__ = [
    "BenchlabError", "fail", "read_json", "code_version", "config_hash", "git_commit",
    "to_jsonable", "make_record", "run_settings", "Timer", "Registry", "SCALES", "check_scale",
    "config_for", "ResultStore", "record_key",
    "interleave", "measure", "measure_side_by_side", "resolve_device", "synchronize", "synced",
    "threads", "time_fn",
]
