"""Provenance of a result: a stable hash of its config, the code version, the git commit."""

import dataclasses
import enum
import functools
import hashlib
import json
import math
import subprocess
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def to_jsonable(obj):
    """Plain JSON types for dataclasses, tuples, paths, numpy and torch scalars, enums."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        items = sorted(obj, key=repr) if isinstance(obj, set | frozenset) else obj
        return [to_jsonable(v) for v in items]
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)  # JSON has no nan/inf; keep them readable
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays/scalars, torch tensors
        return to_jsonable(obj.tolist())
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return repr(obj)


def config_hash(config) -> str:
    """A short stable hash of any config object (dataclass, dict, scalar)."""
    blob = json.dumps(to_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


SHARED_CODE = ("core", "zoo", "pytest_plugin.py", "pytest_session.py")
# data files inside SHARED_CODE that are not code: a record names the part it used in its inputs
# (zoo.models.artifact_inputs: "spec:<name>"), so adding a model spec makes no other result stale
NOT_CODE = ("zoo/specs.py",)


def code_version(experiment_file: str | None = None, *extra) -> str:
    """Hash of the code a result depends on: the core, the zoo, the experiment's own package
    (given by its module file) and any `extra` source files (the bench module that measured it).
    Editing one experiment does not invalidate another's results."""
    paths = [PACKAGE_ROOT / p for p in SHARED_CODE]
    if experiment_file:
        exp = Path(experiment_file).resolve()
        paths.append(exp.parent if exp.name == "__init__.py" else exp)
    paths += [Path(p).resolve() for p in extra]
    return _hash_sources(tuple(paths))


@functools.cache
def _hash_sources(paths: tuple[Path, ...]) -> str:
    digest = hashlib.sha256()
    for root in paths:
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root] if root.exists() else []
        for path in files:
            if path.is_relative_to(PACKAGE_ROOT) and \
                    path.relative_to(PACKAGE_ROOT).as_posix() in NOT_CODE:
                continue
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def sha256_file(path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def file_digest(path) -> str:
    """sha256_file, computed once per (path, size, mtime) in a process: for records' inputs."""
    st = Path(path).stat()
    return _file_digest(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.cache
def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_ROOT,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None
