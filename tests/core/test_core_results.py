"""Records, the store's validation, saved-result readers and `benchlab compare`."""

import json
import sys
import types

import pytest

from benchlab.cli import main
from benchlab.core.compare import compare, tolerance, within
from benchlab.core.errors import BenchlabError
from benchlab.core.records import make_record
from benchlab.core.results import load_records, write_baseline
from benchlab.core.store import ResultStore, StoreWarning, record_key

METRICS = {"loss": 1e-3, "count": 0, "ms_*": None, "pair": (0.0, 0.5)}


@pytest.fixture
def toy(monkeypatch):
    """A registered throwaway experiment `toy` with METRICS."""
    module = types.ModuleType("toy_exp")
    module.METRICS = METRICS
    module.CONFIGS = {}
    module.report = lambda records, outdir: None
    monkeypatch.setitem(sys.modules, "toy_exp", module)
    monkeypatch.setenv("BENCHLAB_EXPERIMENTS", "toy=toy_exp")
    from benchlab.core import experiments

    experiments._load.cache_clear()
    return module


def rec(case="a", **metrics):
    return make_record("toy", "step", case, metrics, scale="tiny", params={"case": case},
                       inputs={"model": "f" * 64}, run={"seed": 0})


def test_record_carries_kind_key_and_provenance():
    r = rec(loss=1.0)
    assert r["case"] == "step[a]" and r["kind"] == "step" and r["scale"] == "tiny"
    assert r["inputs"] == {"model": "f" * 64} and r["run"] == {"seed": 0}
    assert {"cpu", "isa", "torch", "torch_threads", "blas"} <= set(r["machine"])
    # every input of the key moves the config hash: inputs, run settings, params
    other = make_record("toy", "step", "a", {}, scale="tiny", params={"case": "a"},
                        inputs={"model": "0" * 64}, run={"seed": 0})
    seeded = make_record("toy", "step", "a", {}, scale="tiny", params={"case": "a"},
                         inputs={"model": "f" * 64}, run={"seed": 7})
    assert len({r["config_hash"], other["config_hash"], seeded["config_hash"]}) == 3
    assert record_key(r) == record_key(rec(loss=2.0))  # metrics are not part of the key


@pytest.mark.parametrize("a, b, tol, ok", [
    (1.0, 1.0005, 1e-3, True), (1.0, 1.002, 1e-3, False), (3, 3, 0, True), (3, 4, 0, False),
    ([1.0, 2.0], [1.0, 2.0001], 1e-3, True), ([1.0], [1.0, 2.0], 1e-3, False),
    (0.0, 0.4, (0.0, 0.5), True), (0.0, 0.6, (0.0, 0.5), False), ("x", "x", 0, True),
    (float("nan"), float("nan"), 0, True), (float("nan"), 1.0, 1.0, False), (True, 1, 0, False),
])
def test_within(a, b, tol, ok):
    assert within(a, b, tol) is ok


def test_tolerance_patterns_and_undeclared():
    assert tolerance(METRICS, "ms_step", "toy") is None
    assert tolerance(METRICS, "count", "toy") == 0
    with pytest.raises(BenchlabError, match="toy.METRICS: metric 'speed' is not declared"):
        tolerance(METRICS, "speed", "toy")


def test_compare_reports_moved_missing_new_and_config(toy):
    base = [rec("a", loss=1.0, count=3, ms_step=5.0), rec("b", loss=1.0), rec("c", count=1)]
    new = [rec("a", loss=1.0004, count=3, ms_step=9.0), rec("b", loss=1.1), rec("d", count=1)]
    rows, compared = compare(base, new)
    got = {(r.case, r.metric, r.status) for r in rows}
    assert got == {("step[b]", "loss", "moved"), ("step[c]", "*", "missing"),
                   ("step[d]", "*", "new")}
    assert compared == 3  # a.loss, a.count, b.loss; ms_step is a time
    changed = dict(rec("a", loss=1.0), config_hash="other", result_hash="other")
    assert [r.status for r in compare([rec("a", loss=1.0)], [changed])[0]] == ["config"]
    # another run setting only (threads): compared, with a note
    threads = dict(rec("a", loss=1.0), config_hash="other")
    assert [r.status for r in compare([rec("a", loss=1.0)], [threads])[0]] == ["settings"]


def test_compare_command_exit_codes_and_table(toy, tmp_path, capsys):
    base, same, moved = (tmp_path / n for n in ("base.json", "same.jsonl", "moved.jsonl"))
    write_baseline([rec("a", loss=1.0, count=2)], base, command="test")
    ResultStore(same).append(rec("a", loss=1.0, count=2))
    ResultStore(moved).append(rec("a", loss=1.0, count=3))
    assert main(["compare", str(base), str(same)]) == 0
    assert "1 cases, 2 result values compared: 0 moved" in capsys.readouterr().out
    assert main(["compare", str(base), str(moved)]) == 1
    out = capsys.readouterr().out
    assert "moved" in out and "count" in out and "1 moved, 0 missing" in out


def test_compare_unknown_experiment_is_one_line(tmp_path, capsys):
    store = tmp_path / "s.jsonl"
    ResultStore(store).append(dict(rec("a", loss=1.0), experiment="tyop"))
    assert main(["compare", str(store), str(store)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"benchlab: error: {store}: records[0]")
    assert "unknown experiment 'tyop'" in err[0]


@pytest.mark.parametrize("line, why", [
    ({"experiment": "toy", "case": {"a": 1}, "config_hash": "h", "code_version": "v"},
     "case: expected a string, got dict"),
    ({"experiment": "toy", "case": "c", "config_hash": "h", "code_version": "v",
      "metrics": "x"}, "metrics: expected a mapping"),
    ([1, 2], "not a JSON object"),
])
def test_store_skips_poisoned_lines_and_keeps_the_rest(tmp_path, line, why):
    store = ResultStore(tmp_path / "s.jsonl")
    store.append(rec("a", loss=1.0))
    with open(store.path, "a") as f:
        f.write(json.dumps(line) + "\n")
    store.append(rec("b", loss=2.0))
    with pytest.warns(StoreWarning, match=f"s.jsonl:2: skipped a corrupt line \\({why}\\)"):
        assert [r["case"] for r in store.read()] == ["step[a]", "step[b]"]


def test_store_refuses_to_append_a_malformed_record(tmp_path):
    with pytest.raises(ValueError, match="config_hash: expected a string"):
        ResultStore(tmp_path / "s.jsonl").append({"experiment": "x", "case": "c",
                                                   "code_version": "v"})


def test_unwritable_store_is_a_one_line_error(tmp_path):
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(BenchlabError, match="dir.jsonl: result store not writable"):
        ResultStore(tmp_path / "dir.jsonl").check_writable()


def test_benchmark_json_with_a_malformed_record_names_it(tmp_path):
    path = tmp_path / "out.json"
    path.write_text(json.dumps({"benchmarks": [{"extra_info": {"benchlab": {"case": 1}}}]}))
    with pytest.raises(BenchlabError, match=r"out.json: benchmarks\[0\].extra_info.benchlab: "
                                            r"malformed record \(experiment: expected a string"):
        load_records(path)


def test_newest_keeps_the_last_package_version_per_experiment(tmp_path):
    store = tmp_path / "s.jsonl"
    for version, loss in (("v1", 1.0), ("v2", 2.0)):
        ResultStore(store).append(dict(rec("a", loss=loss), package_version=version,
                                       code_version=version + "-bench"))
    assert [r["metrics"]["loss"] for r in load_records(store)] == [2.0]


def test_report_refuses_unregistered_module_names(tmp_path, capsys):
    store = tmp_path / "s.jsonl"
    ResultStore(store).append(dict(rec("a"), experiment="this"))  # `import this` prints the Zen
    assert main(["report", str(store), "--outdir", str(tmp_path / "r")]) == 2
    captured = capsys.readouterr()
    assert "Beautiful is better" not in captured.out
    assert captured.err.startswith(f"benchlab: error: {store}: records[0]")
    assert "unknown experiment 'this'" in captured.err


def test_every_report_says_what_its_records_ran_on(toy, tmp_path):
    from benchlab.core.experiments import report_all

    a, b = rec("a", loss=1.0), rec("b", loss=2.0)
    b["inputs"] = {"model": "0" * 64}
    report_all([a, b], tmp_path)
    text = (tmp_path / "toy" / "provenance.md").read_text()
    assert "| input | model sha256 " + "f" * 64 + " | 1 |" in text
    assert "| input | model sha256 " + "0" * 64 + " | 1 |" in text
    assert f"cpu {a['machine']['cpu']}" in text and "| run settings | seed=0 | 2 |" in text
    report_all([b, a], tmp_path)  # the file depends on the records only, not their order
    assert (tmp_path / "toy" / "provenance.md").read_text() == text
