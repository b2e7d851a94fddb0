"""The result store: one JSON line per finished case, appended atomically.

A record is a plain dict (core.records.make_record) with at least the string fields `experiment`,
`case`, `config_hash` and `code_version`, together its key, and a `metrics` mapping. A line is
written with one `write` under an exclusive lock, then fsync'd, so a killed run leaves at most
one truncated last line. Reading skips such a line with a warning that names the file and line
number, and keeps every other record; so is a line that parses but is not a record (a key field
that is not a string, metrics that are not a mapping).
"""

import contextlib
import fcntl
import json
import math
import os
import tempfile
import warnings
from pathlib import Path

from .errors import BenchlabError

KEY_FIELDS = ("experiment", "case", "config_hash", "code_version")


class StoreWarning(UserWarning):
    pass


def record_key(record: dict) -> tuple:
    return tuple(record.get(f) for f in KEY_FIELDS)


def check_record(rec) -> dict:
    """`rec` if it is a well-formed record, else ValueError saying which field is wrong."""
    if not isinstance(rec, dict):
        raise ValueError("not a JSON object")
    for field in KEY_FIELDS:
        if not isinstance(rec.get(field), str):
            raise ValueError(f"{field}: expected a string, got {type(rec.get(field)).__name__}")
    if not isinstance(rec.get("metrics", {}), dict):
        raise ValueError("metrics: expected a mapping")
    for name, value in (rec.get("metrics") or {}).items():
        problem = _bad_value(value)
        if problem:
            raise ValueError(f"metrics.{name}: {problem}")
    for field in ("scale", "kind"):
        if rec.get(field) is not None and not isinstance(rec[field], str):
            raise ValueError(f"{field}: expected a string")
    return rec


def _bad_value(value, depth: int = 0) -> str | None:
    """Why a metric value is not one our writer makes (finite numbers, strings, booleans, null,
    lists of these; NaN and infinities are written as strings by provenance.to_jsonable), or
    None when it is fine."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a finite number"
    if isinstance(value, list):
        if depth > 8:
            return "lists nested more than 8 deep"
        return next(filter(None, (_bad_value(v, depth + 1) for v in value)), None)
    if value is None or isinstance(value, bool | int | float | str):
        return None
    return f"expected a number, string, boolean or list, got {type(value).__name__}"


class ResultStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def check_writable(self) -> None:
        """Raise BenchlabError unless a record can be appended (checked before any case runs)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
        except OSError as e:
            raise BenchlabError(f"{self.path}: result store not writable ({e.strerror})") from None
        if not self.path.is_file():  # a link to /dev/null would swallow every result
            raise BenchlabError(f"{self.path}: result store is not a regular file")

    def append(self, record: dict) -> None:
        check_record(record)
        line = (json.dumps(record, sort_keys=True, allow_nan=False) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # A killed writer may have left a partial line: start ours on a fresh line.
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self, *, must_exist: bool = False) -> list[dict]:
        """All well-formed records in file order; bad lines are warned about and skipped (a
        killed run's torn last line). A file with lines but not one record is no result store:
        a one-line BenchlabError naming it and its first line."""
        if not self.path.exists():
            if must_exist:
                raise BenchlabError(f"{self.path}: result store not found")
            return []
        records, bad = [], []
        with open(self.path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    records.append(check_record(json.loads(raw)))
                except (ValueError, UnicodeDecodeError, RecursionError) as e:
                    bad.append((lineno, e))
        if bad and not records:
            lineno, e = bad[0]
            raise BenchlabError(f"{self.path}: not a result store, no line is a record (line "
                                f"{lineno}: {e})")
        for lineno, e in bad:
            warnings.warn(f"{self.path}:{lineno}: skipped a corrupt line ({e})", StoreWarning,
                          stacklevel=2)
        return records

    def latest(self, **match) -> dict[tuple, dict]:
        """The last record for each key, optionally only those whose fields equal `match`."""
        out = {}
        for rec in self.read():
            if all(rec.get(k) == v for k, v in match.items()):
                out[record_key(rec)] = rec
        return out


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temp path next to `path`; on success it replaces `path` atomically (os.replace),
    so a reader never sees a half-written file and a failed write leaves the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
