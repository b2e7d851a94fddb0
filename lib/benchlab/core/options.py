"""argparse types that range-check numbers where they are parsed: one usage line, no traceback.

    parser.add_argument("--heads", type=bounded(int, lo=1))
    parser.add_argument("--density", type=bounded(float, lo=0, hi=1))
"""

import argparse
import math
import os
from pathlib import Path


def bounded(cast=int, lo=None, hi=None):
    """argparse type: `cast(text)` in [lo, hi] (either end may be open); floats must be finite.

    argparse names the option in its error: "argument --heads: must be >= 1, got 0".
    """
    kind = "an integer" if cast is int else "a number"

    def parse(text):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {kind}: {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
        if lo is not None and hi is not None and not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be in [{lo}, {hi}], got {value}")
        if lo is not None and value < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {value}")
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"must be <= {hi}, got {value}")
        return value

    parse.__name__ = cast.__name__  # argparse's "invalid <name> value" if anything else fails
    return parse


def file_name(text: str) -> str:
    """argparse type: a name used as one file or folder name, which cannot leave its folder."""
    if not text or text in (".", "..") or "/" in text or "\\" in text or "\0" in text:
        raise argparse.ArgumentTypeError(f"not a plain file name (no '/', '..'): {text!r}")
    return text


def output_dir(text: str) -> str:
    """argparse type: a folder that is, or can be made, a writable directory (checked before any
    work starts: not a file, not under a file, not in a read-only or pseudo file system)."""
    problem = _unwritable(Path(text), want_dir=True)
    if problem:
        raise argparse.ArgumentTypeError(f"{text}: {problem}")
    return text


def output_file(text: str) -> str:
    """argparse type: a file path whose folder is, or can be made, writable, and that is not
    itself a folder or a device."""
    problem = _unwritable(Path(text), want_dir=False)
    if problem:
        raise argparse.ArgumentTypeError(f"{text}: {problem}")
    return text


def _unwritable(path: Path, *, want_dir: bool) -> str | None:
    if path.exists() or path.is_symlink():
        if want_dir and not path.is_dir():
            return "exists and is not a folder"
        if not want_dir and path.is_dir():
            return "is a folder, not a file"
        if not want_dir and not path.is_file():
            return "is not a regular file"
        target = path if want_dir else path.parent
    else:
        target = path.parent
    while not target.exists():  # the nearest existing ancestor must be a writable folder
        if target.is_symlink():
            return f"{target} is a broken link"
        target = target.parent
    if not target.is_dir():
        return f"{target} is not a folder"
    if str(target.resolve()).startswith(("/proc", "/sys", "/dev")):
        return f"{target} is not an ordinary file system"
    if not os.access(target, os.W_OK | os.X_OK):
        return f"{target} is not writable"
    return None
