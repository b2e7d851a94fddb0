"""Layer selection benchmarks: model x case x value method x solver, scalability, exact vs MILP.

    pytest bench/test_layer_selection.py --bench-scale=tiny --bench-reports /tmp/ls/reports

What each case measures is benchlab.layer_selection.measure's KINDS (the CLI and asv go through
the same core.session.Run): every solve is timed; the AlphaPrun benefit, the seed's ratio, the
ratio to the best achievable benefit and the shortfall of heuristic solvers against the exact
optimum are recorded; exact vs MILP runs side by side in rotated rounds, both warm.
"""

import pytest

from benchlab.layer_selection import data

pytestmark = pytest.mark.experiment("layer_selection")


@pytest.fixture(scope="module", autouse=True)
def shared_data():
    if not (data.shared_dir() / "cases" / "experiment_cases.json").exists():
        pytest.skip(f"shared layer-selection data not found under {data.shared_dir()}")


@pytest.mark.cases("solve")
def test_solve(case, measure):
    measure(case)


@pytest.mark.cases("scalability")
def test_scalability(case, measure):
    measure(case)


@pytest.mark.cases("length")
def test_scaling_L(case, measure):
    measure(case)


@pytest.mark.cases("speed")
def test_exact_vs_milp(case, measure):
    measure(case)


@pytest.mark.cases("upstream")
def test_exact_vs_upstream(case, measure):
    measure(case)


@pytest.mark.cases("all_shared")
def test_all_shared(case, measure):
    measure(case)
