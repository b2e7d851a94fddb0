"""The result store: one JSON line per finished case, appended atomically.

A record is a plain dict with at least `experiment`, `case`, `config_hash` and `code_version`;
together they are its key. A line is written with one `write` under an exclusive lock, then
fsync'd, so a killed run leaves at most one truncated last line. Reading skips such a line with a
warning that names the file and line number, and keeps every other record.
"""

import fcntl
import json
import os
import warnings
from pathlib import Path

from .errors import BenchlabError

KEY_FIELDS = ("experiment", "case", "config_hash", "code_version")


class StoreWarning(UserWarning):
    pass


def record_key(record: dict) -> tuple:
    return tuple(record.get(f) for f in KEY_FIELDS)


class ResultStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def append(self, record: dict) -> None:
        missing = [f for f in KEY_FIELDS if f not in record]
        if missing:
            raise ValueError(f"record lacks key fields {missing}")
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
        """All well-formed records in file order; bad lines are warned about and skipped."""
        if not self.path.exists():
            if must_exist:
                raise BenchlabError(f"{self.path}: result store not found")
            return []
        records = []
        with open(self.path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    rec = json.loads(raw)
                    if not isinstance(rec, dict) or any(k not in rec for k in KEY_FIELDS):
                        raise ValueError("not a benchlab record")
                except (ValueError, UnicodeDecodeError) as e:
                    warnings.warn(f"{self.path}:{lineno}: skipped a corrupt line ({e})",
                                  StoreWarning, stacklevel=2)
                    continue
                records.append(rec)
        return records

    def latest(self, **match) -> dict[tuple, dict]:
        """The last record for each key, optionally only those whose fields equal `match`."""
        out = {}
        for rec in self.read():
            if all(rec.get(k) == v for k, v in match.items()):
                out[record_key(rec)] = rec
        return out
