"""SubLoRA's data folder at paper scale: `pytest --bench-data DIR` (exported as $BENCHLAB_DATA)
moves the configs' relative data paths under DIR, so the paper YAML's data/openwebtext bins are
read from a lab's shared dataset folder; absolute paths and the zoo corpus ('') stay as written."""

from pathlib import Path

import numpy as np

from benchlab.sublora import CONFIGS, requires
from benchlab.sublora.config import load

PAPER = "sublora_train_paper.yaml"


def test_relative_dataset_dir_is_read_under_benchlab_data(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCHLAB_DATA", raising=False)
    assert load(PAPER).data.dataset_dir == "data/openwebtext"
    monkeypatch.setenv("BENCHLAB_DATA", str(tmp_path))
    assert load(PAPER).data.dataset_dir == str(tmp_path / "data" / "openwebtext")
    assert load(PAPER, ["--data.dataset_dir=/abs/owt"]).data.dataset_dir == "/abs/owt"
    assert load("sublora_train.yaml").data.dataset_dir == ""  # the zoo corpus


def test_paper_case_runs_once_the_bins_are_under_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHLAB_DATA", str(tmp_path))
    config = CONFIGS["paper"]
    from benchlab.sublora import sweep_cases

    case = sweep_cases(config)[0]
    missing = requires(case, config)
    assert missing and str(tmp_path / "data" / "openwebtext") in missing
    owt = Path(tmp_path, "data", "openwebtext")
    owt.mkdir(parents=True)
    for name in ("train.bin", "val.bin"):
        np.arange(5000, dtype=np.uint16).tofile(owt / name)
    assert str(tmp_path / "data" / "openwebtext") not in (requires(case, config) or "")


def test_bench_data_option_exports_the_folder_and_refuses_a_missing_one(pytester):
    pytester.makepyfile(test_x="import os\ndef test_x():\n    assert os.environ['BENCHLAB_DATA']\n")
    (pytester.path / "d").mkdir()
    assert pytester.runpytest_subprocess("--bench-data", "d").ret == 0
    res = pytester.runpytest_subprocess("--bench-data", "nope")
    assert res.ret != 0
    assert "nope: no such folder" in res.stderr.str()
