"""SubLoRA in asv: the subspace training step per projector next to a plain LoRA step, and one
sweep point's results (bound, empirical bpd, compressed size) as track_* benchmarks, from
sublora.measure (the bench module's functions).

    BENCHLAB_SCALE=tiny asv run --quick --python=same --bench sublora
"""

from benchlab.core import experiments, timing
from benchlab.sublora import measure as M
from benchlab.sublora import step_cases, sweep_cases
from benchlab.sublora.sweep import step_pair

CONFIG = experiments.config("sublora")
DEVICE = timing.resolve_device()
D = CONFIG.dims[0]


class StepSuite:
    params = [list(CONFIG.step_projectors)]
    param_names = ["projector"]
    timeout = 300

    def setup_cache(self):
        """Subspace step / plain LoRA step per projector: measure_step's paired ratio over
        rotated rounds (goal <= 1.5)."""
        timer = timing.Timer(None, DEVICE)
        return {c.projector: M.measure_step(c, CONFIG, timer)["step_ratio"]
                for c in step_cases(CONFIG) if c.d == D}

    def setup(self, ratios, projector):
        _, self.sub_step, self.lora_step = step_pair(CONFIG, D, projector, DEVICE)
        self.sub_step()  # warm-up (a dense P is generated on first use)
        self.lora_step()

    def time_subspace_step(self, ratios, projector):
        timing.synced(self.sub_step, DEVICE)()

    def time_lora_step(self, ratios, projector):
        timing.synced(self.lora_step, DEVICE)()

    def track_step_ratio(self, ratios, projector):
        return ratios[projector]

    def peakmem_subspace_step(self, ratios, projector):
        self.sub_step()

    track_step_ratio.unit = "ratio"


class SweepPoint:
    """The first trained case of the scale's sweep (tiny: the short scratch run): train,
    quantize, code, bound."""

    timeout = 600

    def setup_cache(self):
        case = next(c for c in sweep_cases(CONFIG) if c.mode != "w0")
        return M.measure_sweep(case, CONFIG, timing.Timer(None, DEVICE))

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
