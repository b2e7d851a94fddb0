"""argparse types that range-check numbers where they are parsed: one usage line, no traceback.

    parser.add_argument("--heads", type=bounded(int, lo=1))
    parser.add_argument("--density", type=bounded(float, lo=0, hi=1))
"""

import argparse
import contextlib
import math
import os
from pathlib import Path

INT64 = 2**63 - 1  # no count, size or seed of ours is larger; past it torch and numpy overflow


def bounded(cast=int, lo=None, hi=None, *, gt=None, lt=None):
    """argparse type: `cast(text)` in [lo, hi] and in (gt, lt) (any end may be open); floats
    must be finite, integers must fit 64 bits.

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
        if gt is not None and not value > gt:
            raise argparse.ArgumentTypeError(f"must be > {gt}, got {value}")
        if lt is not None and not value < lt:
            raise argparse.ArgumentTypeError(f"must be < {lt}, got {value}")
        if isinstance(value, int) and abs(value) > INT64:
            raise argparse.ArgumentTypeError(f"must fit a 64-bit integer, got {text!r}")
        return value

    parse.__name__ = cast.__name__  # argparse's "invalid <name> value" if anything else fails
    return parse


def choice(*names):
    """argparse type: one of `names` (for options checked after parsing, where argparse's own
    `choices` cannot be used)."""
    def parse(text):
        if text not in names:
            raise argparse.ArgumentTypeError(
                f"invalid choice: {text!r} (choose from {', '.join(map(repr, names))})")
        return text
    return parse


def int_list(lo=None, hi=None):
    """argparse type: one or more integers, comma or space separated ("1000,2000"), each checked
    as bounded(int, lo, hi) checks one."""
    one = bounded(int, lo, hi)

    def parse(text):
        values = [one(x) for x in text.replace(",", " ").split()]
        if not values:
            raise argparse.ArgumentTypeError("expected integers, got nothing")
        return values

    parse.__name__ = "int"
    return parse


def path_or_name(text: str) -> str:
    """argparse type: a shipped file's plain name, or else a path to an existing file (checked as
    input_file checks it)."""
    if "/" in text or Path(text).exists():
        return input_file(text)
    return text


def file_name(text: str) -> str:
    """argparse type: a name used as one file or folder name, which cannot leave its folder."""
    if not text or text in (".", "..") or "/" in text or "\\" in text or "\0" in text:
        raise argparse.ArgumentTypeError(f"not a plain file name (no '/', '..'): {text!r}")
    return text


def input_file(text: str) -> str:
    """argparse type: an existing, non-empty regular file (not a folder, not a device)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: not a regular file")
    if path.stat().st_size == 0:
        raise argparse.ArgumentTypeError(f"{text}: empty file")
    return text


def text_file(text: str) -> str:
    """argparse type: an `input_file` that is UTF-8 text (read once here, in 1 MiB pieces)."""
    import codecs

    input_file(text)
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with open(text, "rb") as f:
            while piece := f.read(1 << 20):
                decoder.decode(piece)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as e:
        raise argparse.ArgumentTypeError(f"{text}: not UTF-8 text ({e.reason})") from None
    return text


def input_dir(text: str) -> str:
    """argparse type: an existing folder."""
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text}: no such folder")
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


@contextlib.contextmanager
def one_line_usage_errors():
    """Within the block, every argparse parser's usage error is one stderr line, `PROG: error:
    MESSAGE (see PROG -h)`, exit 2: no usage block (a hostile run's error is its one line)."""
    original = argparse.ArgumentParser.error

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")

    argparse.ArgumentParser.error = error
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original
