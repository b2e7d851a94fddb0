"""SubLoRA in asv: the subspace training step per projector next to a plain LoRA step, and one
sweep point's results (bound, empirical bpd, compressed size) as track_* benchmarks, from
sublora.measure (the bench module's functions).

    BENCHLAB_SCALE=tiny asv run --quick --python=same --bench sublora
"""

from benchlab.core import timing
from benchlab.core.asv_suite import Suite
from benchlab.sublora import measure as M
from benchlab.sublora import step_cases, sweep_cases
from benchlab.sublora.sweep import step_pair

Base = Suite("sublora")
D = Base.config.dims[0]


class StepSuite(Base):
    params = [list(Base.config.step_projectors)]
    param_names = ["projector"]

    def setup_cache(self):
        """Subspace step / plain LoRA step per projector: measure_step's paired ratio over
        rotated rounds (goal <= 1.5)."""
        return {c.projector: M.measure_step(c, self.config, self.measurer())["step_ratio"]
                for c in step_cases(self.config) if c.d == D}

    def setup(self, ratios, projector):
        _, self.sub_step, self.lora_step = step_pair(self.config, D, projector, self.device)
        self.sub_step()  # warm-up (a dense P is generated on first use)
        self.lora_step()

    def time_subspace_step(self, ratios, projector):
        timing.synced(self.sub_step, self.device)()

    def time_lora_step(self, ratios, projector):
        timing.synced(self.lora_step, self.device)()

    def track_step_ratio(self, ratios, projector):
        return ratios[projector]

    def peakmem_subspace_step(self, ratios, projector):
        self.sub_step()

    track_step_ratio.unit = "ratio"


class SweepPoint(Base):
    """The first trained case of the scale's sweep (tiny: the short scratch run): train,
    quantize, code, bound."""

    def setup_cache(self):
        case = next(c for c in sweep_cases(self.config) if c.mode != "w0")
        return M.measure_sweep(case, self.config, self.measurer())

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
