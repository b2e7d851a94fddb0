"""Long Exposure operator, exposer and predictor benchmarks (the e2e ones: test_long_exposure.py).

    cd /work/main && pytest bench/test_long_exposure_ops.py --bench-store /tmp/le/store.jsonl \
        --bench-reports /tmp/le/reports --benchmark-json /tmp/le/out.json

test_op_mlp    exp-ablation-operator-mlp: block-sparse MLP forward + input grad vs dense
test_op_attn   exp-ablation-operator-attn: block-sparse attention forward + backward vs SDPA, eager
               (every point runs the operator, full masks too: shortcut=False)
test_kernels   exp-ablation-kernels (Fig 12): SDD, DSD, fc1, fc2 each on its own vs dense
test_exposer   exp-ablation-{attn,mlp}-sparsity: per-layer densities, per token vs unions
test_predictor_quality   predictor recall / precision on held-out rows
test_patterns  exp-ablation-attn-patterns (Fig 9): exposer / predictor / Longformer / BigBird masks
test_mlp_grain exp-ablation-mlp-grain: MLP density by block size / threshold, neurons reordered
test_doc_attn  block-sparse attention with the trained tiny model's masks vs per-document SDPA
               (the reference), causal SDPA and SDPA with the document mask, L=1024 and 2048;
               break-even in-document density against per-document with its 95% interval
What each case measures is benchlab.long_exposure.measure's KINDS (through core.session.Run).
Implementations of one case are timed side by side (core.timing.interleave) and their speedups are
medians of paired rounds (core.stats.paired_ratio); pytest-benchmark times the Long Exposure
implementation.
Metric names: benchlab.long_exposure.opcases docstring.
"""

import pytest

pytestmark = pytest.mark.experiment("long_exposure")


@pytest.mark.cases("op_mlp")
def test_op_mlp(case, measure):
    measure(case)


@pytest.mark.cases("op_attn")
def test_op_attn(case, measure):
    measure(case)


@pytest.mark.cases("kernel")
def test_kernels(case, measure):
    measure(case)


@pytest.mark.cases("exposer")
def test_exposer(case, measure):
    measure(case)


@pytest.mark.cases("pattern")
def test_patterns(case, measure):
    measure(case)


@pytest.mark.cases("mlp_grain")
def test_mlp_grain(case, measure):
    measure(case)


@pytest.mark.cases("predictor_quality")
def test_predictor_quality(case, measure):
    measure(case)


@pytest.mark.cases("doc_attn")
def test_doc_attn(case, measure):
    measure(case)
