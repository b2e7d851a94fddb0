"""core.plan (`benchlab plan`): the cases, needs and costs of a scale, for an allocation request."""

import os

import pytest

from benchlab.core import experiments, plan
from benchlab.core.session import Run


@pytest.fixture(scope="module")
def tiny_plans():
    return plan.make_plan("tiny", "smoke")


def test_the_plan_lists_every_experiment_with_the_runs_case_counts(tiny_plans):
    assert [p.experiment for p in tiny_plans] == sorted(experiments.known())
    for p in tiny_plans:
        run = Run(p.experiment, "tiny", budget="smoke", device="cpu")
        assert p.cases == len(run.all_cases())
        assert p.counts == {k: len(run.cases(k)) for k in run.kinds}
        assert len(p.costs) == p.cases and 0 <= p.runnable <= p.cases


def test_tiny_needs_no_hub_weights_and_the_table_names_every_experiment(tiny_plans):
    assert all(not p.models for p in tiny_plans)  # tiny runs the pinned zoo models only
    text = plan.table(tiny_plans, "tiny", "smoke")
    for p in tiny_plans:
        assert f"| {p.experiment} | {p.cases}: " in text
    assert "Rules of thumb" in text and "300 TFLOP/s" in text


@pytest.mark.parametrize(("name", "published"), [("opt-125m", 125.2e6), ("gpt2", 124.4e6),
                                                 ("llama2-7b", 6.74e9)])
def test_parameters_from_the_meta_model_match_the_published_counts(name, published):
    assert abs(plan.spec_params(name) - published) / published < 0.01
    assert plan.spec_params(plan.hub_id(name)) == plan.spec_params(name)  # by hub id too


def test_memory_and_time_follow_the_stated_rules():
    n = plan.spec_params("gpt2")
    train = plan.cost_of("k", "c", {"shapes": ["gpt2"], "tokens": 1000, "train": True})
    infer = plan.cost_of("k", "c", {"models": ["gpt2"], "tokens": 1000})
    assert train.peak_bytes == n * plan.TRAIN_BYTES * plan.ACTIVATIONS
    assert infer.peak_bytes == n * plan.INFER_BYTES * plan.ACTIVATIONS
    assert train.seconds == pytest.approx(plan.CASE_S + 6 * n * 1000 / plan.TFLOPS)
    assert plan.cost_of("k", "c", {}).seconds == plan.SMALL_CASE_S
    assert plan.cost_of("k", "c", {"params": {"x": 10}}).params == 10
    assert [plan.time_class(s) for s in (5, 600, 7200, 2e5)] == \
        ["seconds", "minutes", "hours", "days"]


def test_paper_smoke_names_the_hub_weights_and_data_and_whether_they_are_here(tmp_path):
    (moe,) = plan.make_plan("paper", "smoke", models_dir=tmp_path, only=["moe_routing"])
    assert moe.models == {"allenai/OLMoE-1B-7B-0924": False}  # an empty models folder
    assert moe.runnable < moe.cases  # its model cases are skipped here
    (sub,) = plan.make_plan("paper", "full", models_dir=tmp_path, only=["sublora"])
    assert set(sub.data) == {"data/openwebtext/train.bin", "data/openwebtext/val.bin"}
    assert sub.model_params == {"gpt2": plan.spec_params("gpt2")}  # from scratch: no weights
    assert not plan.model_present("opt-125m", tmp_path)
    assert "BENCHLAB_MODELS" not in os.environ or os.environ["BENCHLAB_MODELS"] != str(tmp_path)


def test_main_prints_and_writes_the_table(tmp_path, capsys):
    out = tmp_path / "plan.md"
    assert plan.main(["--scale", "tiny", "--budget", "smoke", "--experiments", "sublora",
                      "--detail", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| sublora |" in text and "| sublora | sweep |" in text
    assert text == out.read_text() + "\n"
    assert plan.main(["--scale", "tiny", "--experiments", "nope"]) == 2
