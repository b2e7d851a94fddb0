"""Speed ratios as tracked metrics (core.ratios): regressions are read from intervals, goals from
whole intervals, and `benchlab compare` fails on either with a table naming the ratio."""

import json
import sys
import textwrap

import pytest

from benchlab.cli import main
from benchlab.core.errors import BenchlabError
from benchlab.core.ratios import Ratio, check

DUMMY = textwrap.dedent('''
    from benchlab.core.ratios import Ratio
    CONFIGS = {}
    METRICS = {"ratio": None, "ratio_ci": None, "speedup": None, "loss": 1e-6}
    RATIOS = {
        "router": Ratio("router", "ratio", goal=1.5, interval="ratio_ci"),
        "solver": Ratio("speed", "speedup", direction="higher", cases="exact"),
        "noisy": Ratio("speed", "speedup", direction="higher", cases="noisy*", gate=False),
    }
    def report(records, outdir):
        pass
''')


@pytest.fixture
def dummy(tmp_path, monkeypatch):
    (tmp_path / "ratio_dummy.py").write_text(DUMMY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("BENCHLAB_EXPERIMENTS", "ratio_dummy=ratio_dummy")
    yield sys.modules.get("ratio_dummy")


def rec(kind, case, **metrics):
    return {"experiment": "ratio_dummy", "case": f"{kind}[{case}]", "kind": kind, "scale": "tiny",
            "config_hash": f"{kind}{case}", "code_version": "v", "metrics": metrics}


def store(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


BASE = [rec("router", "bh", ratio=0.40, ratio_ci=[0.38, 0.42], loss=1.0),
        rec("speed", "exact", speedup=22.0), rec("speed", "noisy1", speedup=10.0)]


@pytest.mark.parametrize("new, failing", [
    # unchanged, and drift within the margin (CPU models): passes
    ([0.41, [0.39, 0.43], 21.0, 9.0], []),
    ([0.55, [0.52, 0.60], 16.0, 9.0], []),
    # a 2x slower router: its interval lies beyond the base's by more than 50%
    ([0.80, [0.76, 0.84], 22.0, 10.0], ["router"]),
    # a 2x slower exact solver: half the speedup
    ([0.40, [0.38, 0.42], 11.0, 10.0], ["solver"]),
    # off its goal only when the whole interval is (1.4 [1.3, 1.6] is not)
    ([1.40, [1.30, 1.60], 22.0, 10.0], ["router"]),  # regressed, though within its goal
])
def test_compare_fails_on_a_regressed_ratio_and_names_it(tmp_path, capsys, dummy, new, failing):
    r, ci, speedup, noisy = new
    cur = [rec("router", "bh", ratio=r, ratio_ci=ci, loss=1.0),
           rec("speed", "exact", speedup=speedup), rec("speed", "noisy1", speedup=noisy / 3)]
    code = main(["compare", str(store(tmp_path / "a.jsonl", BASE)),
                 str(store(tmp_path / "b.jsonl", cur))])
    out = capsys.readouterr().out
    assert code == (1 if failing else 0), out
    lines = [ln.split() for ln in out.splitlines()]
    for name in ("router", "solver", "noisy"):
        (row,) = [ln for ln in lines if len(ln) > 2 and ln[2] == name]
        expected = "regressed" if name in failing else "info" if name == "noisy" else "ok"
        assert row[0] == expected, out


def test_goals_and_directions():
    lower = Ratio("k", "r", goal=1.0)
    assert lower.breaks_goal((1.1, 1.05, 1.2)) and not lower.breaks_goal((1.1, 0.95, 1.2))
    higher = Ratio("k", "s", goal=10.0, direction="higher")
    assert higher.breaks_goal((9.0, 8.0, 9.5)) and not higher.breaks_goal((9.0, 8.0, 10.5))
    assert lower.regressed((1.0, 0.9, 1.1), (2.0, 1.9, 2.1), 0.5)
    assert not lower.regressed((1.0, 0.9, 1.1), (1.5, 1.4, 1.7), 0.5)
    assert higher.regressed((20.0, 18.0, 22.0), (10.0, 9.0, 11.0), 0.5)


def test_bad_input_is_one_line(tmp_path, capsys, dummy):
    a = store(tmp_path / "a.jsonl", BASE)
    no_ratio = store(tmp_path / "old.jsonl", [rec("router", "bh", loss=1.0)])
    for argv, needle in [
        (["compare", no_ratio, a], "no ratio 'ratio'"),
        (["compare", a, a, "--ratios", "nonsense"], "--ratios: 'nonsense' is not declared"),
    ]:
        assert main([str(x) for x in argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
    with pytest.raises(SystemExit):
        main(["compare", str(a), str(a), "--margin", "1.5"])
    with pytest.raises(BenchlabError, match="must be in"):
        check([], {}, margin=0)


def test_ratios_timed_under_other_threads_are_shown_not_gated(tmp_path, capsys, dummy):
    base = [dict(r, run={"threads": 1}) for r in BASE[:2]]
    slow = [dict(rec("router", "bh", ratio=0.80, ratio_ci=[0.76, 0.84], loss=1.0),
                 run={"threads": 2}),
            dict(rec("speed", "exact", speedup=11.0), run={"threads": 2})]
    code = main(["compare", str(store(tmp_path / "a.jsonl", base)),
                 str(store(tmp_path / "b.jsonl", slow))])
    out = capsys.readouterr().out
    assert code == 0 and "2 off but not gated" in out, out
