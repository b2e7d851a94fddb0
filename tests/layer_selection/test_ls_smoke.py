"""The smoke budget (`--bench-budget smoke`): every case kind of the paper scale with the fewest
cases, and a zoo case whose paper weights are absent skipped with its hub id named."""

import dataclasses

import pytest

from benchlab import layer_selection as ls
from benchlab import zoo
from benchlab.layer_selection import data
from benchlab.layer_selection.measure import KINDS

needs_shared = pytest.mark.skipif(
    not (data.shared_dir() / "cases" / "experiment_cases.json").exists(),
    reason=f"shared layer-selection data not at {data.shared_dir()}")


def counts(config) -> dict[str, int]:
    return {kind: len(cases(config)) for kind, (cases, _) in KINDS.items()}


@needs_shared
def test_paper_smoke_keeps_every_kind_with_fewer_cases():
    full, smoke = counts(ls.CONFIGS["paper"]), counts(ls.smoke(ls.CONFIGS["paper"]))
    kinds = [k for k, n in full.items() if n]
    assert kinds and all(smoke[k] >= 1 for k in kinds), smoke
    assert all(smoke[k] <= full[k] for k in full) and sum(smoke.values()) < sum(full.values())
    cfg = ls.smoke(ls.CONFIGS["paper"])
    # every model, value method and solver still runs; one budget case and verifier count each
    solve = ls.solve_cases(cfg)
    assert {c.model for c in solve} == set(cfg.models) | set(cfg.zoo_models)
    assert {c.method for c in solve} == set(ls.VALUE_METHODS)
    assert {c.solver for c in solve} == set(cfg.solvers)
    assert len({c.case_id for c in solve}) == 1
    scal = ls.scalability_cases(cfg)
    assert {c.solver for c in scal} == set(cfg.scal_solvers) and len({c.M for c in scal}) == 1
    assert {c.model for c in ls.speed_cases(cfg)} == set(cfg.speed_models)


@pytest.mark.parametrize("scale", list(ls.CONFIGS))
def test_smoke_of_every_scale_is_a_config_of_it(scale):
    cfg = ls.smoke(ls.CONFIGS[scale])
    assert type(cfg) is type(ls.CONFIGS[scale]) and cfg.rounds <= ls.CONFIGS[scale].rounds
    assert ls.smoke(cfg) == cfg  # already the least work


def test_zoo_case_without_weights_is_skipped_naming_the_hub_id(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("BENCHLAB_MODELS", str(tmp_path))  # a models folder without it
    case = ls.SolveCase("opt-125m-case1-norm_2-exact", "opt-125m", "zoo", 1, "norm_2", "exact")
    config = dataclasses.replace(ls.CONFIGS["paper"], zoo_models=("opt-125m",))
    with zoo.offline():
        reason = ls.requires(case, config)
        assert reason and "facebook/opt-125m" in reason and "\n" not in reason
        if (data.shared_dir() / "cases" / "experiment_cases.json").exists():
            assert ls.inputs(case, config)["weights:facebook/opt-125m"] == "absent"
    tiny = dataclasses.replace(case, model="opt-tiny")  # pinned weights: always here
    assert ls.requires(tiny, ls.CONFIGS["tiny"]) is None
    shared = dataclasses.replace(case, source="shared", model="opt_125m")
    assert ls.requires(shared, config) is None
