"""The zoo's on-disk cache: where it lives, its code-version key, atomic writes and a file lock.

    python -c "from benchlab.zoo import cache; print(cache.cache_dir(), cache.zoo_version())"
"""

import contextlib
import fcntl
import functools
import hashlib
import os
from pathlib import Path

from ..core.store import atomic_path  # noqa: F401  (re-exported: the zoo's writers use it)
from . import manifest

ZOO_ROOT = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """$BENCHLAB_CACHE, else ~/.cache/benchlab (read at call time, so tests can redirect it)."""
    root = os.environ.get("BENCHLAB_CACHE") or Path.home() / ".cache" / "benchlab"
    return Path(root).expanduser()


VERSIONED = ("batches.py", "train.py")  # the sources that decide a trained model's weights


@functools.cache
def zoo_version() -> str:
    """Cache key of models trained here (non-default schedules; the default tiny ones are pinned):
    the sources in VERSIONED and the digests of the pinned tokenizer and corpus, so a new model
    spec or an edit to the zoo's loaders, CLI or probes invalidates nothing."""
    digest = hashlib.sha256()
    for name in VERSIONED:
        digest.update(name.encode())
        digest.update((ZOO_ROOT / name).read_bytes())
    digest.update(manifest.digest(manifest.TOKENIZER).encode())
    digest.update(manifest.digest(manifest.CORPUS).encode())
    return digest.hexdigest()[:12]


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
