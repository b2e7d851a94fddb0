"""SubLoRA in asv: the subspace training step per projector next to a plain LoRA step, and one
sweep point's results (bound, empirical bpd, compressed size) as track_* benchmarks.

    BENCHLAB_SCALE=tiny asv run --quick --python=same --bench sublora
"""

import os
import statistics

from benchlab.core import timing
from benchlab.core.scale import config_for
from benchlab.sublora import CONFIGS, run_point, sweep_cases
from benchlab.sublora.sweep import step_pair

CONFIG = config_for(CONFIGS, os.environ.get("BENCHLAB_SCALE", "tiny"))
D = CONFIG.dims[0]


class StepSuite:
    params = [list(CONFIG.step_projectors)]
    param_names = ["projector"]
    timeout = 300

    def setup(self, projector):
        _, self.sub_step, self.lora_step = step_pair(CONFIG, D, projector)
        self.sub_step()  # warm-up (a dense P is generated on first use)
        self.lora_step()

    def time_subspace_step(self, projector):
        self.sub_step()

    def time_lora_step(self, projector):
        self.lora_step()

    def track_step_ratio(self, projector):
        """Median subspace step / median plain LoRA step, timed in alternation (goal <= 1.5)."""
        a, b = [], []
        for _ in range(5):
            a += timing.time_fn(self.sub_step, "cpu", warmup=0, trials=1)
            b += timing.time_fn(self.lora_step, "cpu", warmup=0, trials=1)
        return statistics.median(a) / statistics.median(b)

    track_step_ratio.unit = "ratio"


class SweepPoint:
    """The first trained case of the scale's sweep (tiny: the short scratch run): train,
    quantize, code, bound."""

    timeout = 600

    def setup_cache(self):
        case = next(c for c in sweep_cases(CONFIG) if c.mode != "w0")
        return run_point(CONFIG, case)

    def track_bound_value(self, m):
        return m["bound_value"]

    def track_empirical_bpd(self, m):
        return m["empirical_bpd"]

    def track_compressed_size_bits(self, m):
        return m["compressed_size_bits"]

    def track_bound_eval_seconds(self, m):
        return m["eval_seconds"]

    track_bound_value.unit = track_empirical_bpd.unit = "bits/token"
    track_compressed_size_bits.unit = "bits"
    track_bound_eval_seconds.unit = "seconds"
