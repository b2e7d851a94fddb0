"""argparse types that range-check numbers where they are parsed: one usage line, no traceback.

    parser.add_argument("--heads", type=bounded(int, lo=1))
    parser.add_argument("--density", type=bounded(float, lo=0, hi=1))
"""

import argparse
import math


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
