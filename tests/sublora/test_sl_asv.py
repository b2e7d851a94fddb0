"""bench/asv/sublora.py: track_* values are read from records that core.session.Run measures in
setup_cache, on the bench's own cases (a CI-sized config here)."""

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from benchlab.sublora import CONFIGS, W0

ASV = Path(__file__).resolve().parents[2] / "bench" / "asv" / "sublora.py"
FAST = ("model.init_from=scratch", "data.batch_size=2", "data.block_size=16",
        "training.max_iters=2", "training.eval_interval=1", "training.eval_iters=1",
        "learning_rate.warmup_iters=1", "learning_rate.lr_decay_iters=2",
        "data.n_documents=500", "data.n_val_documents=20", "bounds.bound_samples=4",
        "bounds.max_doc_tokens=16", "sublora.linear_head_enable_lora=false")


@pytest.fixture(scope="module")
def asv():
    before = torch.get_num_threads()
    spec = importlib.util.spec_from_file_location("asv_sublora", ASV)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    torch.set_num_threads(before)


def test_tracks_read_the_records_of_the_bench_cases(asv):
    config = replace(CONFIGS["tiny"], overrides=FAST, dims=(40,),
                     modes=(W0, ("unigram", 0.5), ("uniform", 0.5)), seeds=(3,),
                     step_projectors=("dense",), step_rounds=1, min_gain_over_w0=0)
    sweep = type("Sweep", (asv.SweepPoint,), {"config": config})()
    rec = sweep.setup_cache()
    assert rec["case"] == "sweep[d40-uniform-s3]" and rec["kind"] == "sweep"  # not a reference
    assert sweep.track_bound_value(rec) == rec["metrics"]["bound_value"] > 0
    assert sweep.track_compressed_size_bits(rec) == rec["metrics"]["compressed_size_bits"]
    step = type("Step", (asv.StepSuite,), {"config": config})()
    records = step.setup_cache()
    assert list(records) == ["dense"] and records["dense"]["case"] == "step[step-d40-dense]"
    assert step.track_step_ratio(records, "dense") == records["dense"]["metrics"]["step_ratio"]
    step.setup(records, "dense")
    step.time_subspace_step(records, "dense")
