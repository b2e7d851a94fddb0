"""SubLoRA benchmarks: sweep points (train + bound; at tiny scale a CI slice of the scratch study,
the w = 0 baseline and one short uniform run, which must bound >= 1 bit/token below it), the
subspace training step vs a plain LoRA step, and the bound evaluation. The full 36-run study is
`benchlab sublora run-all` (reports/sublora/).

    pytest bench/test_sublora.py -n 2 --bench-store /tmp/sublora/store.jsonl \
        --bench-reports /tmp/sublora/reports --benchmark-json /tmp/sublora/out.json

What each case measures is benchlab.sublora.measure's `measure_<kind>` (asv calls the same
functions); on CPU each runs with one torch thread per process (xdist spreads the cases).
"""

import pytest

from benchlab.sublora import measure as M

pytestmark = pytest.mark.experiment("sublora")


@pytest.mark.cases("sweep_cases")
def test_sweep(case, config, timer, record):
    metrics = M.measure_sweep(case, config, timer)
    record(**metrics)
    gain = M.gain_over_w0(config, case, metrics, timer.device)  # training must move the bound
    assert gain is None or gain >= config.min_gain_over_w0, \
        f"{case.id}: only {gain:.3f} bits below w = 0"


@pytest.mark.cases("step_cases")
def test_train_step(case, config, timer, record):
    record(**M.measure_step(case, config, timer))


@pytest.mark.cases("bound_cases")
def test_bound_eval(case, config, timer, record):
    record(**M.measure_bound(case, config, timer))
