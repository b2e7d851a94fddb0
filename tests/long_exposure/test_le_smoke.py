"""The smoke budget (long_exposure.smoke) and the paper cases' weights (requires, inputs)."""

import pytest

from benchlab import zoo
from benchlab.long_exposure import CONFIGS, inputs, requires, smoke
from benchlab.long_exposure import finetune as ft
from benchlab.long_exposure.measure import KINDS


def _cases(config) -> dict:
    return {kind: cases(config) for kind, (cases, _) in KINDS.items()}


@pytest.mark.parametrize("scale", sorted(CONFIGS))
def test_smoke_keeps_every_kind_and_model_with_less_work(scale):
    full, cut = CONFIGS[scale], smoke(CONFIGS[scale])
    got, had = _cases(cut), _cases(full)
    assert all(bool(got[k]) == bool(had[k]) for k in KINDS), {k: len(v) for k, v in got.items()}
    assert sum(map(len, got.values())) < sum(map(len, had.values()))
    for kind in ("memory", "scale", "gpt2", "model_step"):  # one case per kind and model
        assert {c.model for c in got[kind]} == {c.model for c in had[kind]}
    assert max(c.seq_len for k in ("end2end", "memory", "predictor") for c in got[k]) \
        <= min(c.seq_len for c in had["end2end"])
    assert cut.ops.predictor_steps < full.ops.predictor_steps
    assert (cut.rounds, cut.warmup, cut.batch_size, cut.curve_steps) == (1, 0, 1, 1)
    assert smoke(full) == cut and CONFIGS[scale] is full


def test_paper_smoke_keeps_every_kind_and_is_smaller_than_full():
    got, had = _cases(smoke(CONFIGS["paper"])), _cases(CONFIGS["paper"])
    assert all(len(got[k]) >= 1 for k in KINDS)
    assert sum(map(len, got.values())) < sum(map(len, had.values()))
    assert [c.masks for c in got["model_step"]] == ["exposed", "synthetic"]
    assert {c.part for c in got["ablation"]} == {"attn", "mlp"}
    (curve,) = got["predictor"]
    assert (curve.masks, curve.reorder) == ("random", True)  # its measure runs the dense one


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHLAB_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with zoo.offline():
        yield


def test_a_paper_case_without_weights_is_skipped_with_zoos_reason(no_weights):
    config = smoke(CONFIGS["paper"])
    case = _cases(config)["scale"][0]
    reason = requires(case, config)
    assert reason and zoo.spec(case.model).hub_id in reason
    assert inputs(case, config)[f"weights:{zoo.spec(case.model).hub_id}"] == "absent"
    op = _cases(config)["op_mlp"][0]  # random tensors: needs nothing
    assert requires(op, config) is None


def test_a_paper_cases_inputs_name_its_weights(monkeypatch):
    seen = []
    monkeypatch.setattr(zoo, "weights_identity",
                        lambda name: seen.append(name) or {f"weights:{name}": "abc"})
    config = CONFIGS["paper"]
    case = _cases(config)["gpt2"][0]
    assert inputs(case, config)[f"weights:{case.model}"] == "abc" and seen == [case.model]
    tiny = CONFIGS["tiny"]
    assert not any(k.startswith("weights:") for k in inputs(_cases(tiny)["end2end"][0], tiny))


def test_paper_tokenizers_go_through_the_zoo(monkeypatch):
    monkeypatch.setattr(zoo, "load_tokenizer", lambda name: ("zoo", name))
    assert ft.tokenizer_for("opt-1.3b") == ("zoo", "opt-1.3b")
