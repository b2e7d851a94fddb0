"""Transformer timing in asv: one training step of the tiny LM per mode and precision, plus the
result metrics (parameter count, FLOPs, ours/peer time ratio) as track_* benchmarks.

    BENCHLAB_SCALE=tiny asv run --quick --python=same --bench lm_timing
"""

import os

from benchlab.core import timing
from benchlab.core.scale import config_for
from benchlab.lm_timing import CONFIGS
from benchlab.lm_timing import run as R
from benchlab.lm_timing.model import SIZES, num_params, step_flops

CONFIG = config_for(CONFIGS, os.environ.get("BENCHLAB_SCALE", "tiny"))
SIZE, CONTEXT = "tiny", 128  # a few seconds per benchmark at every scale


class StepSuite:
    params = [["forward", "forward_backward", "train_step"], ["fp32", "bf16"]]
    param_names = ["mode", "precision"]

    def setup(self, mode, precision):
        self.prep = R.prepare(SIZE, CONTEXT, mode, precision, batch=CONFIG.batch,
                              vocab=CONFIG.vocab)
        self.prep.step()  # warm-up outside the timing

    def time_step(self, mode, precision):
        self.prep.step()

    def track_step_gflop(self, mode, precision):
        return step_flops(SIZES[SIZE], CONFIG.batch, CONTEXT, mode) / 1e9


class ModelFacts:
    def track_small_num_params(self):
        return num_params(SIZES["small"])


class PeerRatio:
    """Median time ours / transformers LLaMA, forward+backward, timed in alternation."""

    timeout = 120

    def setup_cache(self):
        a = R.prepare(SIZE, CONTEXT, "forward_backward", "fp32", batch=CONFIG.batch,
                      vocab=CONFIG.vocab, impl="ours")
        b = R.prepare(SIZE, CONTEXT, "forward_backward", "fp32", batch=CONFIG.batch,
                      vocab=CONFIG.vocab, impl="peer")
        ta, tb = [], []
        for _ in range(5):
            ta += timing.time_fn(a.step, "cpu", warmup=0, trials=1)
            tb += timing.time_fn(b.step, "cpu", warmup=0, trials=1)
        ta, tb = sorted(ta[1:]), sorted(tb[1:])
        return (ta[1] + ta[2]) / (tb[1] + tb[2])

    def track_ours_over_peer(self, ratio):
        return ratio

    track_ours_over_peer.unit = "ratio"
