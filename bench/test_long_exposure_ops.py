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
What each case measures is benchlab.long_exposure.measure's `measure_<kind>`. Implementations of
one case are timed side by side (core.timing.interleave) and their speedups are medians of paired
rounds (core.stats.paired_ratio); pytest-benchmark times the Long Exposure implementation.
Metric names: benchlab.long_exposure.opcases docstring.
"""

import pytest

from benchlab.long_exposure import measure as M
from benchlab.long_exposure import opcases as oc

pytestmark = pytest.mark.experiment("long_exposure")


@pytest.mark.cases.with_args(oc.op_mlp_cases)
def test_op_mlp(case, config, timer, seed, record):
    record(**M.measure_op_mlp(case, config, timer, seed))


@pytest.mark.cases.with_args(oc.op_attn_cases)
def test_op_attn(case, config, timer, seed, record):
    record(**M.measure_op_attn(case, config, timer, seed))


@pytest.mark.cases.with_args(oc.kernel_cases)
def test_kernels(case, config, timer, seed, record):
    record(**M.measure_kernel(case, config, timer, seed))


@pytest.mark.cases.with_args(oc.exposer_cases)
def test_exposer(case, config, timer, record):
    record(**M.measure_exposer(case, config, timer))


@pytest.mark.cases.with_args(oc.pattern_cases)
def test_patterns(case, config, timer, record):
    record(**M.measure_pattern(case, config, timer))


@pytest.mark.cases.with_args(oc.mlp_grain_cases)
def test_mlp_grain(case, config, timer, record):
    record(**M.measure_mlp_grain(case, config, timer))


@pytest.mark.cases.with_args(oc.predictor_quality_cases)
def test_predictor_quality(case, config, timer, record):
    record(**M.measure_predictor_quality(case, config, timer))
