"""Transformer timing in asv: one training step of the tiny LM per mode and precision, plus the
result metrics (parameter count, FLOPs, ours/peer time ratio) as track_* benchmarks.

    BENCHLAB_SCALE=tiny asv run --quick --python=same --bench lm_timing
"""

from benchlab.core.asv_suite import Suite
from benchlab.lm_timing import pair_cases
from benchlab.lm_timing import run as R
from benchlab.lm_timing.measure import measure_pair
from benchlab.lm_timing.model import SIZES, num_params, step_flops

Base = Suite("lm_timing")
SIZE, CONTEXT = "tiny", 128  # a few seconds per benchmark at every scale


class StepSuite(Base):
    params = [["forward", "forward_backward", "train_step"], ["fp32", "bf16"]]
    param_names = ["mode", "precision"]

    def setup(self, mode, precision):
        self.prep = R.prepare(SIZE, CONTEXT, mode, precision, device=self.device,
                              batch=self.config.batch, vocab=self.config.vocab)
        self.prep.step()  # warm-up outside the timing

    def time_step(self, mode, precision):
        self.prep.step()

    def peakmem_step(self, mode, precision):
        self.prep.step()


class ModelFacts(Base):
    def track_small_num_params(self):
        return num_params(SIZES["small"])


class StepFlops(Base):
    """Analytic FLOPs of the timed step (no model built)."""

    params = [["forward", "forward_backward", "train_step"]]
    param_names = ["mode"]

    def track_step_gflop(self, mode):
        return step_flops(SIZES[SIZE], self.config.batch, CONTEXT, mode) / 1e9


class PeerRatio(Base):
    """Paired median time ours / transformers LLaMA (lm_timing.measure.measure_pair: rotated
    rounds), the first peer case of the scale."""

    def setup_cache(self):
        case = next(c for c in pair_cases(self.config) if c.kind == "peer")
        return measure_pair(case, self.config, self.measurer())["ratio"]

    def track_ours_over_peer(self, ratio):
        return ratio

    track_ours_over_peer.unit = "ratio"
