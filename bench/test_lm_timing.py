"""Transformer timing benchmarks: the sweep (per size and context, every mode x precision x
attention x compile step side by side: forward vs forward+backward vs train step), peer and bf16
ratios, the warm-up study, attention kernels and the matmul peak behind MFU.

    pytest bench/test_lm_timing.py --bench-scale=tiny --bench-reports /tmp/lmt/reports
    pytest bench/test_lm_timing.py --bench-scale=paper --bench-device=cuda   # the full GPU table

What each case measures is benchlab.lm_timing.measure's KINDS (the CLI and asv go through the same
core.session.Run). A case that does not fit records status "oom" instead of crashing. Every timing
(the sweep, peer, bf16) runs in rotated rounds (core.timing); the report reads medians and paired
ratios over those rounds.
"""

import pytest

pytestmark = pytest.mark.experiment("lm_timing")


@pytest.mark.cases("peak")
def test_matmul_peak(case, measure):
    measure(case)


@pytest.mark.cases("sweep")
def test_sweep(case, measure):
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
