"""The smoke budget (sublora.smoke): every case kind's code path with the least work."""

import pytest

from benchlab.core.errors import BenchlabError
from benchlab.core.session import Run
from benchlab.sublora import CONFIGS, requires, smoke
from benchlab.sublora.data import bins_missing, load_corpus
from benchlab.sublora.measure import KINDS
from benchlab.sublora.sweep import run_config


def _count(config) -> dict:
    return {kind: len(cases(config)) for kind, (cases, _) in KINDS.items()}


@pytest.mark.parametrize("scale", sorted(CONFIGS))
def test_smoke_keeps_every_kind_and_the_scales_model_with_less_work(scale):
    full, cut = CONFIGS[scale], smoke(CONFIGS[scale])
    assert all(n >= 1 for n in _count(cut).values()), _count(cut)
    assert sum(_count(cut).values()) <= sum(_count(full).values())
    a, b = (run_config(c, KINDS["sweep"][0](c)[-1]) for c in (full, cut))
    assert (b.model.name, b.model.init_from) == (a.model.name, a.model.init_from)
    assert b.training.max_iters < a.training.max_iters
    assert b.bounds.bound_samples < a.bounds.bound_samples
    assert b.data.block_size <= a.data.block_size
    assert cut.step_rounds == cut.bound_rounds == 1 and cut.min_gain_over_w0 == 0
    assert smoke(full) == cut and CONFIGS[scale] is full  # pure: CONFIGS never change


def test_paper_smoke_is_far_smaller_and_runs_every_mode_and_projector():
    full, cut = CONFIGS["paper"], smoke(CONFIGS["paper"])
    assert sum(_count(cut).values()) < sum(_count(full).values()) == 54
    modes = {c.mode for c in KINDS["sweep"][0](cut)} | {c.mode for c in KINDS["step"][0](cut)} \
        | {c.mode for c in KINDS["bound"][0](cut)}
    assert modes == {"w0", "unigram", "bigram", "fixed", "uniform", "learned"}
    assert {c.projector for c in KINDS["step"][0](cut)} == {"dense", "sparse", "kron"}
    assert run_config(cut, KINDS["sweep"][0](cut)[0]).model.name == "gpt2"  # the paper spec


def test_without_bins_paper_smoke_trains_on_the_zoo_corpus_and_full_paper_is_skipped(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/openwebtext here
    full, cut = CONFIGS["paper"], smoke(CONFIGS["paper"])
    case = KINDS["sweep"][0](full)[0]
    assert run_config(cut, case).data.dataset_dir == ""
    assert requires(case, cut) is None
    reason = requires(case, full)
    assert "data/openwebtext" in reason and "data.dataset_dir" in reason
    with pytest.raises(BenchlabError, match="data.dataset_dir"):
        load_corpus(run_config(full, case))


def test_with_bins_the_smoke_keeps_the_data_folder(tmp_path):
    import numpy as np

    for name in ("train.bin", "val.bin"):
        np.arange(1, 200, dtype=np.uint16).tofile(tmp_path / name)
    assert bins_missing(str(tmp_path)) is None
    assert "val.bin" in bins_missing(str(tmp_path / "nowhere"))
    from dataclasses import replace

    full = replace(CONFIGS["paper"], overrides=(f"data.dataset_dir={tmp_path}",))
    case = KINDS["sweep"][0](full)[0]
    assert run_config(smoke(full), case).data.dataset_dir == str(tmp_path)
    assert requires(case, full) is None


def test_a_smoke_run_records_its_budget():
    run = Run("sublora", "tiny", threads=1, budget="smoke")
    kind, case = run.all_cases(["bound"])[0]
    rec = run.measure(kind, case)
    assert rec["run"]["budget"] == "smoke" and rec["metrics"]["s"] == 2
