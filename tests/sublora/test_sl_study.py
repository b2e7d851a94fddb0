"""`benchlab sublora run-all`: the seed's run folders, resumable, readable by `analyze`."""

import pytest

from benchlab.cli import main as top_main
from benchlab.core.errors import BenchlabError
from benchlab.sublora.analyze import collect
from benchlab.sublora.study import parse_mode

FAST = ["--model.init_from=scratch", "--data.batch_size=2", "--data.block_size=16",
        "--training.max_iters=2", "--training.eval_interval=1", "--training.eval_iters=1",
        "--learning_rate.warmup_iters=1", "--learning_rate.lr_decay_iters=2",
        "--data.n_documents=500", "--data.n_val_documents=20", "--bounds.bound_samples=4",
        "--bounds.max_doc_tokens=16", "--sublora.linear_head_enable_lora=false"]


def test_run_all_writes_seed_folders_resumes_and_analyze_reads_them(tmp_path, capsys):
    root = tmp_path / "runs"
    args = ["sublora", "run-all", "--results_dir", str(root), "--dims", "40", "--seeds", "3",
            "--modes", "w0", "fixed_bheavy", "learned", "--no-progress", *FAST]
    assert top_main(args) == 0
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert names == ["d40_fixed_bheavy_s3", "d40_learned_s3", "d40_w0_s3"]
    for name in names:
        assert {"best_ckpt.safetensors", "best_ckpt.json", "bounds_metrics.json",
                "bounds_metrics.pt"} <= {p.name for p in (root / name).iterdir()}
    stamps = {n: (root / n / "bounds_metrics.json").stat().st_mtime_ns for n in names}
    capsys.readouterr()
    assert top_main(args) == 0  # all done: nothing is rerun or overwritten
    assert stamps == {n: (root / n / "bounds_metrics.json").stat().st_mtime_ns for n in names}
    assert "bound" not in capsys.readouterr().err.replace("bounds_metrics", "")
    cases = sorted((r["config"]["case"]["mode"], r["config"]["case"]["ratio"])
                   for r in collect(root))
    assert cases == [("fixed", 0.8), ("learned", 0.5), ("w0", 0.5)]
    out = tmp_path / "report"
    assert top_main(["sublora", "analyze", "--results_dir", str(root), "--output_dir",
                     str(out)]) == 0
    assert "w=0 (untrained)" in (out / "summary_table.md").read_text()


def _store(path):
    from benchlab.core.store import ResultStore

    return ResultStore(path).read()


def test_run_all_records_each_point_through_run_and_two_sweeps_compare(tmp_path):
    """OUT/store.jsonl: one record per sweep point (kind "sweep", the ids and case shape of
    sweep_cases), through core.session.Run; a second sweep with the same arguments compares
    value by value with the first; a store lost after the runs is rebuilt from the folders
    without rerunning anything, with the same metrics."""
    from benchlab.core.compare import compare
    from benchlab.sublora import Config, sweep_cases
    from benchlab.sublora.study import STORE_NAME

    args = ["--dims", "40", "--seeds", "3", "--modes", "w0", "uniform", "--no-progress", *FAST]
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        assert top_main(["sublora", "run-all", "--results_dir", str(root), *args]) == 0
    ra, rb = _store(a / STORE_NAME), _store(b / STORE_NAME)
    want = sweep_cases(Config(dims=(40,), modes=(("w0", 0.5), ("uniform", 0.5)), seeds=(3,)))
    assert [r["case"] for r in ra] == [f"sweep[{c.id}]" for c in want]
    for rec, case in zip(ra, want, strict=True):
        assert rec["kind"] == "sweep" and rec["scale"] == "custom"
        assert rec["config"]["case"] == {"id": case.id, "d": 40, "mode": case.mode,
                                         "ratio": 0.5, "seed": 3, "kind": "sweep"}
        assert rec["config_hash"] and rec["code_version"]
        assert rec["metrics"]["bound_value"] > 0
    rows, compared = compare(ra, rb)
    assert compared > 0 and not [r for r in rows if r.status in ("moved", "config")]
    assert top_main(["compare", str(a / STORE_NAME), str(b / STORE_NAME)]) == 0
    stamps = {p: p.stat().st_mtime_ns for p in a.rglob("*") if p.name != STORE_NAME}
    (a / STORE_NAME).unlink()
    assert top_main(["sublora", "run-all", "--results_dir", str(a), *args]) == 0
    assert stamps == {p: p.stat().st_mtime_ns for p in a.rglob("*") if p.name != STORE_NAME}
    rebuilt = _store(a / STORE_NAME)
    assert [r["config_hash"] for r in rebuilt] == [r["config_hash"] for r in ra]
    for old, new in zip(ra, rebuilt, strict=True):
        assert new["metrics"] == {k: v for k, v in old["metrics"].items() if k != "train_seconds"}


def test_analyze_records_are_made_by_run(tmp_path):
    root = tmp_path / "runs"
    assert top_main(["sublora", "run-all", "--results_dir", str(root), "--dims", "40",
                     "--seeds", "3", "--modes", "w0", "--no-progress", *FAST]) == 0
    (rec,) = collect(root)
    assert rec["case"] == "sweep[d40_w0_s3]" and rec["kind"] == "sweep"
    assert rec["scale"] == "custom" and rec["config_hash"] and rec["code_version"]
    assert rec["config"]["case"]["mode"] == "w0" and rec["config"]["case"]["id"] == "d40-w0-s3"


def test_modes_and_bad_input():
    assert parse_mode("fixed_aheavy") == ("fixed", 0.2) and parse_mode("fixed0.3") == ("fixed", 0.3)
    assert parse_mode("w0") == ("w0", 0.5)
    with pytest.raises(BenchlabError, match="--modes: unknown mode 'adaptive'"):
        parse_mode("adaptive")
    with pytest.raises(BenchlabError, match="unknown mode 'fixed1.5'"):
        parse_mode("fixed1.5")
    assert top_main(["sublora", "run-all", "--results_dir", "/nonexistent/x",
                     "--bounds.bound_type=token_level"]) == 2
