"""The smoke budget (`--bench-budget smoke`): every case kind of the paper scale with the fewest
cases, a code path per routing, enough calibration for BH to select, and cases that run absent
hub weights skipped with the hub id named."""

import math

import pytest

from benchlab import moe_routing as moe
from benchlab import zoo
from benchlab.moe_routing.measure import KINDS
from benchlab.moe_routing.routers import ROUTINGS


def counts(config) -> dict[str, int]:
    return {kind: len(cases(config)) for kind, (cases, _) in KINDS.items()}


def test_paper_smoke_keeps_every_kind_with_fewer_cases():
    full, smoke = counts(moe.CONFIGS["paper"]), counts(moe.smoke(moe.CONFIGS["paper"]))
    assert all(n >= 1 for n in smoke.values()), smoke
    assert all(smoke[k] <= full[k] for k in full) and sum(smoke.values()) < sum(full.values())


def test_paper_smoke_keeps_a_routing_per_code_path_and_bh_can_select():
    paper = moe.CONFIGS["paper"]
    cfg = moe.smoke(paper)
    assert "topk_8" in cfg.routings
    assert {moe._signature(ROUTINGS.get(r)) for r in cfg.routings} == \
        {moe._signature(ROUTINGS.get(r)) for r in paper.routings}
    assert cfg.equal_count_layers[0][:2] == paper.equal_count_layers[0][:2]  # shapes kept
    experts = zoo.hf_config(cfg.model).num_experts
    alpha = min(ROUTINGS.get(r).alpha for r in cfg.routings if ROUTINGS.get(r).method == "bh")
    assert cfg.calib_tokens + 1 > experts / alpha and cfg.calib_tokens % cfg.seq_len == 0
    assert cfg.calib_tokens < paper.calib_tokens and cfg.max_new_tokens >= 2


@pytest.mark.parametrize("scale", list(moe.CONFIGS))
def test_smoke_of_every_scale_is_a_config_of_it(scale):
    cfg = moe.smoke(moe.CONFIGS[scale])
    assert type(cfg) is moe.Config and cfg.calib_tokens <= moe.CONFIGS[scale].calib_tokens
    assert moe.smoke(cfg) == cfg  # already the least work


def test_cases_on_absent_hub_weights_are_skipped_naming_the_hub_id(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("BENCHLAB_MODELS", str(tmp_path))  # a models folder without it
    cfg = moe.smoke(moe.CONFIGS["paper"])
    hub = zoo.spec(cfg.model).hub_id
    with zoo.offline():
        for kind, (cases, _) in KINDS.items():
            case = cases(cfg)[0]
            reason = moe.requires(case, cfg)
            if kind in moe.MODEL_KINDS:  # they run the model: skipped, the hub id named
                assert reason and hub in reason and "\n" not in reason
                assert moe.inputs(case, cfg)[f"weights:{hub}"] == "absent"
            else:  # random layers and logits: they run anywhere
                assert reason is None and f"weights:{hub}" not in moe.inputs(case, cfg)
    tiny = moe.CONFIGS["tiny"]  # pinned trained weights: never skipped, inputs as before
    assert moe.requires(moe.generate_cases(tiny)[0], tiny) is None
    assert moe.inputs(moe.generate_cases(tiny)[0], tiny) == zoo.artifact_inputs(tiny.model)


def test_smoke_calibration_rounds_up_to_whole_rows():
    cfg = moe.smoke(moe.CONFIGS["paper"])
    experts = zoo.hf_config(cfg.model).num_experts
    assert cfg.calib_tokens == cfg.seq_len * math.ceil((math.floor(experts / 0.05) + 1)
                                                       / cfg.seq_len)
