"""A hostile run over the pytest plugin's --bench-* options (issue 36), in-process through
pytester with --collect-only: each bad value is one stderr line naming the option, a usage
error exit, no traceback, no case collected, and the existing result store byte-identical."""

import hashlib

import pytest
from fuzz_inputs import GENERATORS

pytest_plugins = ["pytester"]

STORE = b'{"not": "touched"}\n'
BAD_CHOICE = [("unknown", "huge"), ("empty", ""), ("case", "TINY")]
SHARDS = [("zero-n", "0/0"), ("i-past-n", "3/2"), ("words", "a/b"), ("one-number", "1"),
          ("negative", "-1/2"), ("three-parts", "1/2/3"), ("huge", "1/" + "9" * 25)]
GPUS = [("words", "a,b"), ("negative", "-1"), ("empty-item", "1,,2"), ("comma", ",")]

def values(pairs):
    return [(label, lambda tmp, v=v: v) for label, v in pairs]


BAD_CHOICE, SHARDS, GPUS = values(BAD_CHOICE), values(SHARDS), values(GPUS)
OPTIONS = [
    ("--bench-scale", BAD_CHOICE), ("--bench-device", BAD_CHOICE), ("--bench-budget", BAD_CHOICE),
    ("--bench-heap", BAD_CHOICE),
    ("--bench-threads", GENERATORS["count0"] + [("past-1024", lambda t: "1025")]),
    ("--bench-seed", GENERATORS["seed"] + [("past-2**32", lambda t: str(2**32))]),
    ("--bench-reports", GENERATORS["out_dir"]), ("--bench-models", GENERATORS["in_dir"]),
    ("--bench-data", GENERATORS["in_dir"]),
    ("--bench-store", GENERATORS["out_file"]), ("--bench-shard", SHARDS), ("--bench-gpus", GPUS),
]
ROWS = [(f"{option}={label}", option, make) for option, values in OPTIONS
        for label, make in values]


@pytest.mark.parametrize("option, make", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_plugin_option_is_one_line(pytester, monkeypatch, option, make):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("BENCHLAB_MODELS", raising=False)
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    (pytester.path / "store.jsonl").write_bytes(STORE)
    value = make(pytester.path)
    value = value if isinstance(value, str) else str(value)
    store = [] if option == "--bench-store" else ["--bench-store", "store.jsonl"]
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--collect-only", "-q",
                                          *store, f"{option}={value}")
    err = [ln for ln in result.stderr.lines if ln.strip()]
    assert result.ret == pytest.ExitCode.USAGE_ERROR, (result.ret, err)
    assert len(err) == 1 and option in err[0], err
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert "test_nothing" not in result.stdout.str()
    assert hashlib.sha256((pytester.path / "store.jsonl").read_bytes()).digest() == \
        hashlib.sha256(STORE).digest()
