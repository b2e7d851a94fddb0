"""Bad inputs as data, and the one check every fuzz case makes (issue 36).

A generator is a list of (label, make) pairs: `make(tmp)` builds whatever the value needs under
the case's folder and returns the command-line text. A case is (argv with one VALUE slot,
option it fills, generator); `expand` crosses them into parametrize rows. `check` runs
`benchlab ARGV` in-process and asserts: a non-zero exit, exactly one stderr line, which names the
option or the file, no traceback, and every file that existed before is byte-identical after.
"""

import hashlib
import os
import signal
import warnings
from pathlib import Path

from benchlab.cli import main

# a rejected input exits in well under a second; past this, it was accepted and work started
LIMIT_S = int(os.environ.get("BENCHLAB_FUZZ_LIMIT_S", "20"))
VALUE = object()  # the slot in a case's argv that each generator fills


class Accepted(Exception):
    """Raised by the alarm: the command started real work instead of rejecting its input."""


def afile(tmp: Path, name: str = "afile", data: bytes = b"keep me\n") -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def adir(tmp: Path, name: str = "adir") -> Path:
    path = tmp / name
    path.mkdir(exist_ok=True)
    (path / "keep.txt").write_bytes(b"keep me too\n")
    return path


def link(tmp: Path, target: str, name: str = "devlink") -> Path:
    path = tmp / name
    path.symlink_to(target)
    return path


def text(data: bytes, name: str = "input.json"):
    return lambda tmp: afile(tmp, name, data)


# --- numbers: each kind lists values outside its documented range -------------------------
HUGE = "9" * 25  # past int64
NOT_NUMBERS = [("abc", "abc"), ("empty", ""), ("nan", "nan"), ("inf", "inf")]
POSITIVE = [*NOT_NUMBERS, ("zero", "0"), ("neg", "-1"), ("huge", HUGE), ("float", "1.5")]
COUNT0 = [*NOT_NUMBERS, ("neg", "-1"), ("huge", HUGE), ("float", "2.5"), ("hex", "0x10")]
SEED = [("neg", "-1"), ("huge", HUGE), ("nan", "nan"), ("abc", "seed"), ("float", "0.5")]
FRACTION = [("nan", "nan"), ("inf", "inf"), ("-inf", "-inf"), ("neg", "-0.5"), ("big", "1.5"),
            ("abc", "half"), ("overflow", "1e400")]
OPEN_FRACTION = [*FRACTION, ("zero", "0"), ("one", "1")]
RATE = [("nan", "nan"), ("inf", "inf"), ("neg", "-1"), ("zero", "0"), ("abc", "fast"),
        ("overflow", "1e400"), ("empty", "")]
NUMBERS = {"positive": POSITIVE, "count0": COUNT0, "seed": SEED, "fraction": FRACTION,
           "open_fraction": OPEN_FRACTION, "rate": RATE}
# values as data: (label, text) -> (label, make)
NUMBERS = {k: [(lab, (lambda tmp, v=v: v)) for lab, v in vals] for k, vals in NUMBERS.items()}

# --- paths ------------------------------------------------------------------------------------
OUT_FILE = [
    ("folder", lambda t: adir(t)),
    ("under-file", lambda t: afile(t) / "x.json"),
    ("dev-null", lambda t: "/dev/null"),
    ("link-to-device", lambda t: link(t, "/dev/null")),
    ("proc", lambda t: "/proc/benchlab-fuzz/out.json"),
    ("broken-link-dir", lambda t: link(t, str(t / "gone" / "deeper"), "broken") / "x.json"),
]
OUT_DIR = [
    ("file", lambda t: afile(t)),
    ("under-file", lambda t: afile(t) / "sub"),
    ("link-to-device", lambda t: link(t, "/dev/null")),
    ("proc", lambda t: "/proc/benchlab-fuzz"),
    ("sys", lambda t: "/sys/benchlab-fuzz/out"),
]
MISSING_AND_ODD = [
    ("missing", lambda t: t / "missing.json"),
    ("folder", lambda t: adir(t)),
    ("link-to-device", lambda t: link(t, "/dev/null")),
    ("under-file", lambda t: afile(t) / "x.json"),
]
JSON_SHAPES = [
    ("empty", text(b"")),
    ("not-utf8", text(b"\xff\xfe\x00{\x80garbage")),
    ("truncated", text(b'{"cases": [')),
    ("array", text(b"[1, 2, 3]")),
    ("null", text(b"null")),
    ("string", text(b'"text"')),
    ("nan-literal", text(b'{"x": NaN}')),
    ("deep", text(b"[" * 100000 + b"]" * 100000)),
]
IN_JSON = MISSING_AND_ODD + JSON_SHAPES
IN_DIR = [
    ("missing", lambda t: t / "missing-dir"),
    ("file", lambda t: afile(t)),
    ("link-to-device", lambda t: link(t, "/dev/null")),
]
IN_TEXT = MISSING_AND_ODD + [("not-utf8", text(b"\xff\xfe\x00\x80garbage", "input.txt")),
                             ("empty", text(b"", "input.txt"))]
PATHS = {"out_file": OUT_FILE, "out_dir": OUT_DIR, "in_json": IN_JSON, "in_dir": IN_DIR,
         "in_text": IN_TEXT}
GENERATORS = {**NUMBERS, **PATHS}


def expand(cases: list[tuple[str, list, str, str]]) -> list:
    """[(id, argv, option, make)]: each case's argv (VALUE marks the slot) crossed with every
    value of its generator kind."""
    rows = []
    for name, argv, option, kind in cases:
        for label, make in GENERATORS[kind]:
            rows.append((f"{name}:{option}={label}", argv, option, make))
    return rows


def snapshot(folder: Path) -> dict[Path, str]:
    """sha256 of every regular file under `folder` (links to devices are not followed)."""
    out = {}
    for p in folder.rglob("*"):
        if p.is_file() and not p.is_symlink():
            out[p] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _alarm(signum, frame):
    raise Accepted("still running past the limit: the input was accepted and work started")


def check(tmp: Path, argv: list, make, needles, capsys, monkeypatch, limit=LIMIT_S) -> str:
    """Run `benchlab argv` (VALUE filled by make(tmp)) in tmp; the one stderr line."""
    monkeypatch.chdir(tmp)
    afile(tmp, "previous-output.json", b'{"keep": "these bytes"}\n')
    value = str(make(tmp)) if make is not None else None
    args = [value if a is VALUE else str(a(tmp) if callable(a) else a) for a in argv]
    before = snapshot(tmp)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(limit)
    try:  # warnings are recorded: from the command line, each would be more stderr lines
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            code = main(args)
    except SystemExit as e:
        code = e.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    captured = capsys.readouterr()
    hidden = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)
    err = [f"{w.category.__name__}: {w.message}" for w in warned  # as Python shows them
           if not issubclass(w.category, hidden)]
    err += captured.err.strip().splitlines()
    assert "Traceback" not in captured.err, captured.err
    assert code not in (0, None), f"accepted silently (exit {code}): {args}\n{captured.out[-500:]}"
    assert len(err) == 1, err
    wanted = [n for n in needles if n] + ([value] if value else [])
    assert any(n in err[0] for n in wanted), (err[0], wanted)
    after = snapshot(tmp)
    changed = sorted(str(p) for p in before if after.get(p) != before[p])
    assert not changed, f"changed or removed: {changed}"
    return err[0]


def option_names(option: str) -> list[str]:
    """An option's spellings an error may use: --a-b, --a_b, a_b, a-b."""
    if not option.startswith("-"):
        return [option]
    bare = option.lstrip("-")
    return [option, "--" + bare.replace("-", "_"), "--" + bare.replace("_", "-"),
            bare.replace("-", "_"), bare]

