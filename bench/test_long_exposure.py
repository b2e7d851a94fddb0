"""Long Exposure end-to-end benchmarks: PEFT step time and memory, dense (eager, SDPA) vs Long
Exposure, ablations, predictor loss curves, model scaling. Figures: see long_exposure.report.

    pytest bench/test_long_exposure.py --bench-scale tiny --bench-store /tmp/le/store.jsonl \
        --bench-reports /tmp/le/reports --benchmark-json /tmp/le/out.json

test_end2end          exp-overall-end2end: one training step per PEFT method, LE vs SDPA, eager
test_scale            exp-scale-model: LoRA step, LE vs dense, across model sizes
test_ablation         exp-ablation-{attn,mlp}-time: LoRA step, only attention (or MLP) sparse
test_memory           exp-overall-memory-*: weights, gradients + AdamW moments, activations
test_breakdown        exp-ablation-breakdown: forward / backward / optimizer / predictor per method
test_model_step       the issue's goal: LoRA step at L=1024 on packed rows, LE (exposed or
                      synthetic masks, also dispatched at in-run break-even) vs dense
test_predictor_curve  exp-ablation-predictor: loss curves, dense / predicted / random masks
What each case measures is benchlab.long_exposure.measure's KINDS (asv goes through the same
core.session.Run). Every timed comparison is side by side in one run: each pytest-benchmark round
runs the LE step and the dense steps once each, in an order rotated by round.
"""

import pytest

pytestmark = pytest.mark.experiment("long_exposure")


@pytest.mark.cases("end2end")
def test_end2end(case, measure):
    measure(case)


@pytest.mark.cases("scale")
def test_scale(case, measure):
    measure(case)


@pytest.mark.cases("ablation")
def test_ablation(case, measure):
    measure(case)


@pytest.mark.cases("gpt2")
def test_gpt2(case, measure):
    measure(case)


@pytest.mark.cases("memory")
def test_memory(case, measure):
    measure(case)


@pytest.mark.cases("breakdown")
def test_breakdown(case, measure):
    measure(case)


@pytest.mark.cases("model_step")
def test_model_step(case, measure):
    measure(case)


@pytest.mark.cases("predictor")
def test_predictor_curve(case, measure):
    measure(case)
