"""Hostile input to the core's readers and commands (issue 16): whatever a results file holds,
`benchlab report | compare | baseline | publish` exit non-zero with one line on stderr that
names the file, never a traceback, and change no file they were not asked to write."""

import json
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchlab.cli import main
from benchlab.core.store import StoreWarning

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=12)
RECORD_KEYS = ("experiment", "case", "kind", "scale", "config_hash", "code_version", "metrics")
# A record-shaped object whose fields are anything (unregistered experiment names included).
RECORDISH = st.fixed_dictionaries({}, optional={k: JSON for k in RECORD_KEYS})
DOCUMENT = (JSON | st.fixed_dictionaries({"benchmarks": st.lists(
    st.fixed_dictionaries({"extra_info": st.fixed_dictionaries({"benchlab": RECORDISH})}),
    max_size=3)}) | st.fixed_dictionaries({"records": st.lists(RECORDISH, max_size=3)}))
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def run(capsys, *argv):
    """`benchlab *argv` in-process: an escaping exception fails the test with its traceback."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)
        code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.err.strip().splitlines()


def assert_one_line_error(code, err, path):
    assert code != 0
    assert len(err) == 1 and err[0].startswith("benchlab: error: "), err
    assert str(path) in err[0], err
    assert "Traceback" not in err[0]


def snapshot(folder):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@FUZZ
@given(doc=DOCUMENT)
def test_any_json_document(tmp_path, capsys, doc):
    path = tmp_path / "out.json"
    path.write_text(json.dumps(doc))
    before = snapshot(tmp_path)
    for argv in (("report", path, "--outdir", tmp_path / "rep"), ("compare", path, path),
                 ("baseline", path, "--output", tmp_path / "base.json"),
                 ("publish", path, "--scale", "tiny", "--outdir", tmp_path / "pub")):
        code, err = run(capsys, *argv)
        if code:  # a document the readers accept is fine; a rejected one says why in one line
            assert_one_line_error(code, err, path)
        assert {p: b for p, b in snapshot(tmp_path).items() if p in before} == before


@FUZZ
@given(lines=st.lists(JSON.map(json.dumps) | st.text(max_size=30), min_size=1, max_size=5))
def test_any_store_lines(tmp_path, capsys, lines):
    path = tmp_path / "store.jsonl"
    path.write_text("\n".join(lines) + "\n")
    before = path.read_bytes()
    for argv in (("report", path, "--outdir", tmp_path / "rep"), ("compare", path, path)):
        code, err = run(capsys, *argv)
        if code:
            assert_one_line_error(code, err, path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("content", [b"", b"\x00\xff\xfe", b"{", b"[1, 2]", b'"text"', b"NaN"])
def test_garbage_files(tmp_path, capsys, content):
    for name in ("out.json", "store.jsonl"):
        path = tmp_path / name
        path.write_bytes(content)
        code, err = run(capsys, "report", path, "--outdir", tmp_path / "rep")
        assert_one_line_error(code, err, path)
        assert path.read_bytes() == content


def test_missing_file_and_directory(tmp_path, capsys):
    for path in (tmp_path / "nope.json", tmp_path):
        code, err = run(capsys, "compare", path, path)
        assert_one_line_error(code, err, path)


def test_unknown_command_lists_every_command(capsys):
    code, err = run(capsys, "layer-selektion", "run")
    assert code == 2 and len(err) == 1
    assert "layer-selection" in err[0] and "did you mean" in err[0], err
