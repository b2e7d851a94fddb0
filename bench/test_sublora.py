"""SubLoRA benchmarks: sweep points (train + bound; at tiny scale a CI slice of the scratch study:
8 seeds of w = 0 and of the grouped, fixed r = 0.8 and learned modes, 20 short steps each, each
trained run bounding >= min_gain_over_w0 bits/token below the w = 0 bound of its seed, plus the
unigram and bigram count models), the subspace training step vs a plain LoRA step, and the bound
evaluation. The full study is `benchlab sublora run-all` (reports/sublora/).

    pytest bench/test_sublora.py -n 2 --bench-store /tmp/sublora/store.jsonl \
        --bench-reports /tmp/sublora/reports --benchmark-json /tmp/sublora/out.json

What each kind measures is benchlab.sublora.measure's KINDS (the CLI and asv go through the same
core.session.Run); on CPU each runs with one torch thread per process (xdist spreads the cases).
"""

import pytest

pytestmark = pytest.mark.experiment("sublora")


@pytest.mark.cases("sweep")
def test_sweep(case, measure):
    metrics = measure(case)
    assert metrics.get("gain_met") is not False, \
        f"{case.id}: only {metrics['gain_over_w0']:.3f} bits/token below w = 0"


@pytest.mark.cases("step")
def test_train_step(case, measure):
    measure(case)


@pytest.mark.cases("bound")
def test_bound_eval(case, measure):
    measure(case)
