"""SubLoRA in asv: the subspace training step per projector next to a plain LoRA step, and one
sweep point's results (bound, empirical bpd, compressed size) as track_* benchmarks.

    BENCHLAB_SCALE=tiny asv run --quick --python=same --bench sublora
"""

from benchlab.core import experiments, stats, timing
from benchlab.sublora import run_point, sweep_cases
from benchlab.sublora.sweep import step_pair

CONFIG = experiments.config("sublora")
DEVICE = timing.resolve_device()
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
        """Subspace step / plain LoRA step, the suite's paired ratio over rotated rounds (goal
        <= 1.5)."""
        t = timing.interleave({"sub": self.sub_step, "lora": self.lora_step}, DEVICE, warmup=0,
                              rounds=5)
        return stats.paired_ratio(t["sub"], t["lora"])

    def peakmem_subspace_step(self, projector):
        self.sub_step()

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
