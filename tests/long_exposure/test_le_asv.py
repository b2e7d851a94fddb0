"""bench/asv/long_exposure.py: track_* values are read from the record that core.session.Run
measures in setup_cache, on the bench's own end2end case (a CI-sized config here)."""

import importlib.util
from dataclasses import replace
from pathlib import Path

import torch

from benchlab.long_exposure import CONFIGS

ASV = Path(__file__).resolve().parents[2] / "bench" / "asv" / "long_exposure.py"


def test_tracks_read_the_record_of_the_bench_case():
    before = torch.get_num_threads()
    spec = importlib.util.spec_from_file_location("asv_long_exposure", ASV)
    asv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(asv)
    try:
        config = replace(CONFIGS["tiny"], seq_lens=(128,), methods=("lora",), rounds=1,
                         warmup=0)
        results = type("Results", (asv.LoraStepResults,), {"config": config})()
        rec = results.setup_cache()
        assert rec["case"] == "end2end[opttiny-lora-L128]" and rec["kind"] == "end2end"
        assert results.track_speedup_sdpa(rec) == rec["metrics"]["speedup_sdpa"]
        assert results.track_speedup_per_document(rec) == rec["metrics"]["speedup_sdpa_docs"]
        assert 0 < results.track_density_attn(rec) == rec["metrics"]["density_attn"] <= 1
        step = type("Step", (asv.LoraStepSuite,), {"config": config})()
        step.setup("le")
        step.time_step("le")
    finally:
        torch.set_num_threads(before)
