"""core.options: range-checked argparse types, against a plain re-statement of the rule."""

import argparse
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchlab.core.options import bounded, file_name

TEXT = st.one_of(st.integers(-10**12, 10**12).map(str), st.floats().map(repr), st.text(max_size=6),
                 st.sampled_from(["nan", "inf", "-inf", "1e400", " 3 ", "0x10", "1_000"]))


def accepted(cast, text, lo, hi):
    """None when the text must be refused, else the value: parse as Python does, then range."""
    try:
        value = cast(text)
    except ValueError:
        return None
    if cast is float and not math.isfinite(value):
        return None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return None
    return value


@given(text=TEXT, cast=st.sampled_from([int, float]),
       lo=st.none() | st.integers(-5, 5), span=st.none() | st.integers(0, 10))
def test_bounded_accepts_exactly_the_range(text, cast, lo, span):
    hi = None if span is None else (lo or 0) + span
    want = accepted(cast, text, lo, hi)
    parse = bounded(cast, lo=lo, hi=hi)
    if want is None:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)
    else:
        assert parse(text) == want


def test_argparse_names_the_option(capsys):
    p = argparse.ArgumentParser(prog="x")
    p.add_argument("--density", type=bounded(float, lo=0, hi=1))
    with pytest.raises(SystemExit):
        p.parse_args(["--density", "1.5"])
    assert capsys.readouterr().err.splitlines()[-1] == (
        "x: error: argument --density: must be in [0, 1], got 1.5")


@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", "a\\b", "x\0"])
def test_file_name_refuses_paths(bad):
    with pytest.raises(argparse.ArgumentTypeError):
        file_name(bad)


def test_file_name_keeps_plain_names():
    assert file_name("llama2_7b") == "llama2_7b" and file_name("opt-125m.v2") == "opt-125m.v2"
