"""The zoo's on-disk cache: where it lives, its code-version key, atomic writes and a file lock.

    python -c "from benchlab.zoo import cache; print(cache.cache_dir(), cache.zoo_version())"
"""

import contextlib
import fcntl
import functools
import hashlib
import os
import tempfile
from pathlib import Path

ZOO_ROOT = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """$BENCHLAB_CACHE, else ~/.cache/benchlab (read at call time, so tests can redirect it)."""
    root = os.environ.get("BENCHLAB_CACHE") or Path.home() / ".cache" / "benchlab"
    return Path(root).expanduser()


# the sources that decide a cached model's weights, tokenizer and corpus (not cli/data/probes)
VERSIONED = ("batches.py", "cache.py", "models.py", "text.py", "tokenize.py", "train.py")


@functools.cache
def zoo_version() -> str:
    """Hash of the zoo sources in VERSIONED: experiment edits (and edits to the zoo's loaders,
    CLI or probes) do not invalidate cached models, tokenizer or corpus."""
    digest = hashlib.sha256()
    for name in VERSIONED:
        path = ZOO_ROOT / name
        digest.update(name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def locked(path: Path):
    """Exclusive lock on `path`.lock: one process builds a cache entry, the others wait for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temp path next to `path`; on success it replaces `path` atomically (os.replace)."""
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
