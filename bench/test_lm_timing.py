"""Transformer timing benchmarks: size x context x mode x precision, forward vs forward+backward
vs train step side by side, peer and bf16 ratios, the warm-up study, attention kernels and the
matmul peak behind MFU.

    pytest bench/test_lm_timing.py --bench-scale=tiny --bench-reports /tmp/lmt/reports
    pytest bench/test_lm_timing.py --bench-scale=paper --bench-device=cuda   # the full GPU table

What each case measures is benchlab.lm_timing.measure's `measure_<kind>` (the CLI and asv call
the same functions). A case that does not fit records status "oom" instead of crashing.
Comparisons (modes, peer, bf16) run in rotated rounds (core.timing) and record the median of
the per-round ratios with a bootstrap interval.
"""

import pytest

from benchlab.lm_timing import measure as M

pytestmark = pytest.mark.experiment("lm_timing")


@pytest.mark.cases("peak_cases")
def test_matmul_peak(case, config, timer, record):
    record(**M.measure_peak(case, config, timer))


@pytest.mark.cases("step_cases")
def test_step(case, config, timer, seed, record):
    record(**M.measure_step(case, config, timer, seed))


@pytest.mark.cases("modes_cases")
def test_modes(case, config, timer, seed, record):
    record(**M.measure_modes(case, config, timer, seed))


@pytest.mark.cases("pair_cases")
def test_pair(case, config, timer, seed, record):
    record(**M.measure_pair(case, config, timer, seed))


@pytest.mark.cases("warmup_cases")
def test_warmup(case, config, timer, seed, record):
    """Fresh processes; pytest-benchmark times the whole study once (start-ups included)."""
    record(**M.measure_warmup(case, config, timer, seed))


@pytest.mark.cases("attn_cases")
def test_attention(case, config, timer, seed, record):
    record(**M.measure_attn(case, config, timer, seed))
