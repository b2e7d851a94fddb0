"""Layer selection benchmarks: model x case x value method x solver, scalability, exact vs MILP.

    pytest bench/test_layer_selection.py --bench-scale=tiny --bench-reports /tmp/ls/reports

What each case measures is benchlab.layer_selection.measure's `measure_<kind>` (the CLI and asv
call the same functions): every solve is timed; the AlphaPrun benefit, the seed's ratio, the
ratio to the best achievable benefit and the shortfall of heuristic solvers against the exact
optimum are recorded; exact vs MILP runs side by side in rotated rounds, both warm.
"""

import pytest

from benchlab.layer_selection import data
from benchlab.layer_selection import measure as M

pytestmark = pytest.mark.experiment("layer_selection")


@pytest.fixture(scope="module", autouse=True)
def shared_data():
    if not (data.shared_dir() / "cases" / "experiment_cases.json").exists():
        pytest.skip(f"shared layer-selection data not found under {data.shared_dir()}")


@pytest.mark.cases("solve_cases")
def test_solve(case, config, timer, record):
    record(**M.measure_solve(case, config, timer))


@pytest.mark.cases("scalability_cases")
def test_scalability(case, config, timer, record):
    record(**M.measure_scalability(case, config, timer))


@pytest.mark.cases("length_cases")
def test_scaling_L(case, config, timer, record):
    record(**M.measure_length(case, config, timer))


@pytest.mark.cases("speed_cases")
def test_exact_vs_milp(case, config, timer, record):
    record(**M.measure_speed(case, config, timer))


@pytest.mark.cases("all_shared_cases")
def test_all_shared(case, config, timer, record):
    record(**M.measure_all_shared(case, config, timer))
