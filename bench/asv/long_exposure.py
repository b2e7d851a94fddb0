"""asv benchmarks for Long Exposure: one LoRA training step dense (eager, SDPA) vs Long Exposure,
and the measured end-to-end ratios and densities as track_*.

    asv run --quick --bench long_exposure        # BENCHLAB_SCALE=tiny|small|paper
"""

from benchlab.core.asv_suite import Suite
from benchlab.long_exposure import end2end_cases
from benchlab.long_exposure import workload as wl
from benchlab.long_exposure.measure import measure_end2end

Base = Suite("long_exposure")


class LoraStepSuite(Base):
    """A LoRA step on the scale's model at its shortest end-to-end length."""

    params = ["eager", "sdpa", "le"]
    param_names = ["mode"]
    def setup(self, mode):
        c = self.config
        self.trainer = wl.trainer(c, c.model, "lora", c.seq_lens[0], mode=mode, device=self.device)
        self.trainer.step()  # warm-up

    def time_step(self, mode):
        self.trainer.step()

    def peakmem_step(self, mode):
        self.trainer.step()


class LoraStepResults(Base):
    """The same step's side-by-side speedups and Long Exposure's densities, measured once by
    the end-to-end LoRA case at the shortest length (long_exposure.measure.measure_end2end)."""

    def setup_cache(self):
        c = self.config  # measure_end2end sets the scale's threads itself
        L = c.seq_lens[0]
        case = next(k for k in end2end_cases(c) if k.method == "lora" and k.seq_len == L)
        m = measure_end2end(case, c, self.measurer())
        return {k: m[k] for k in ("speedup_sdpa", "speedup_eager", "density_attn", "density_mlp")}

    def track_speedup_sdpa(self, cache):
        return cache["speedup_sdpa"]

    def track_speedup_eager(self, cache):
        return cache["speedup_eager"]

    def track_density_attn(self, cache):
        return cache["density_attn"]

    def track_density_mlp(self, cache):
        return cache["density_mlp"]

    track_speedup_sdpa.unit = track_speedup_eager.unit = "ratio"
    track_density_attn.unit = track_density_mlp.unit = "fraction of blocks kept"
