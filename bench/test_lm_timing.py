"""Transformer timing benchmarks: size x context x mode x precision, forward vs forward+backward
vs train step side by side, peer and bf16 ratios, the warm-up study, attention kernels and the
matmul peak behind MFU.

    pytest bench/test_lm_timing.py --bench-scale=tiny --bench-reports /tmp/lmt/reports
    pytest bench/test_lm_timing.py --bench-scale=paper --bench-device=cuda   # the full GPU table

What each case measures is benchlab.lm_timing.measure's KINDS (the CLI and asv go through the same
core.session.Run). A case that does not fit records status "oom" instead of crashing. Comparisons
(modes, peer, bf16) run in rotated rounds (core.timing) and record the median of the per-round
ratios with a bootstrap interval.
"""

import pytest

pytestmark = pytest.mark.experiment("lm_timing")


@pytest.mark.cases("peak")
def test_matmul_peak(case, measure):
    measure(case)


@pytest.mark.cases("step")
def test_step(case, measure):
    measure(case)


@pytest.mark.cases("modes")
def test_modes(case, measure):
    measure(case)


@pytest.mark.cases("pair")
def test_pair(case, measure):
    measure(case)


@pytest.mark.cases("warmup")
def test_warmup(case, measure):
    measure(case)


@pytest.mark.cases("attn")
def test_attention(case, measure):
    measure(case)
