"""core.session.Run, the run object of every front end: cases, keys, store, resume, and records
that compare across run settings that do not change what is computed."""

import torch

from benchlab.core.compare import compare
from benchlab.core.results import load_records
from benchlab.core.session import Run
from benchlab.core.store import record_key


def small_length_cases(run: Run) -> list:
    return [c for c in run.cases("length") if c.L == min(x.L for x in run.cases("length"))]


def test_run_measures_saves_and_resumes(tmp_path):
    store = tmp_path / "store.jsonl"
    run = Run("layer_selection", "tiny", threads=1, store=store)
    cases = small_length_cases(run)
    assert cases and all(not run.done("length", c) for c in cases)
    for case in cases:
        rec = run.save(run.measure("length", case))
        assert rec["experiment"] == "layer_selection" and rec["kind"] == "length"
        assert rec["case"] == f"length[{case.id}]" and rec["run"]["threads"] == 1
        assert record_key(rec) == run.key("length", case)
    # a fresh Run over the same store finds them done: nothing of these cases is pending
    again = Run("layer_selection", "tiny", threads=1, store=store)
    assert all(again.done("length", c) for c in cases)
    assert not {c.id for k, c in again.pending(["length"])} & {c.id for c in cases}
    assert [r["case"] for r in again.stored(["length"])] == [f"length[{c.id}]" for c in cases]
    # another seed is another key: the case is pending again
    other = Run("layer_selection", "tiny", threads=1, seed=1, store=store)
    assert not other.done("length", cases[0])


def test_records_compare_across_threads_but_not_across_seeds(tmp_path):
    threads = torch.get_num_threads()
    try:
        one = Run("layer_selection", "tiny", threads=1)
        case = small_length_cases(one)[0]
        a = one.measure("length", case)
        b = Run("layer_selection", "tiny", threads=2).measure("length", case)
        c = Run("layer_selection", "tiny", threads=1, seed=5).measure("length", case)
    finally:
        torch.set_num_threads(threads)
    assert a["config_hash"] != b["config_hash"] and a["result_hash"] == b["result_hash"]
    rows, compared = compare([a], [b])
    assert compared > 0
    assert [(r.status, r.base, r.new) for r in rows] == [("settings", "threads=1", "threads=2")]
    rows, _ = compare([a], [c])
    assert [r.status for r in rows] == ["config"]  # the seed chooses what is computed


def test_a_baseline_keeps_what_compare_matches_on(tmp_path):
    from benchlab.core.results import write_baseline

    run = Run("layer_selection", "tiny", threads=1)
    rec = run.measure("length", small_length_cases(run)[0])
    path = write_baseline([rec], tmp_path / "base.json", command="test")
    (kept,) = load_records(path)
    assert kept["result_hash"] == rec["result_hash"] and kept["run"] == rec["run"]
    assert "machine" not in kept and "time" not in kept
