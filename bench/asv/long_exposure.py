"""asv benchmarks for Long Exposure: one LoRA training step dense (eager, SDPA) vs Long Exposure,
and the measured end-to-end ratios (per-document SDPA, the exact reference, first) and densities
as track_*, read from the record that core.session.Run measures in setup_cache (the bench's
end2end case: Run.cases("end2end")).

    asv run --quick --bench long_exposure        # BENCHLAB_SCALE=tiny|small|paper
"""


from benchlab.core.asv_suite import Suite
from benchlab.core.session import Run

Base = Suite("long_exposure")




def _lora_case(run: Run):
    """The bench's first end-to-end LoRA case (the scale's shortest length)."""
    return next(c for c in run.cases("end2end") if c.method == "lora")


class LoraStepSuite(Base):
    """A LoRA step on the scale's model at its shortest end-to-end length."""

    params = ["eager", "sdpa", "le"]
    param_names = ["mode"]

    def setup(self, mode):
        from benchlab.long_exposure import setups

        case = _lora_case(self.run())
        self.trainer = setups.trainer(self.config, case.model, case.method, case.seq_len, mode=mode,
                                      device=self.device)
        self.trainer.step()  # warm-up

    def time_step(self, mode):
        self.trainer.step()

    def peakmem_step(self, mode):
        self.trainer.step()


class LoraStepResults(Base):
    """The same step's side-by-side speedups and Long Exposure's densities: the record of the
    end-to-end LoRA case at the shortest length (measure_end2end sets the scale's threads)."""

    def setup_cache(self):
        run = self.run()
        return run.measure("end2end", _lora_case(run))

    def track_speedup_per_document(self, record):  # per-document SDPA: the exact reference
        return record["metrics"]["speedup_sdpa_docs"]

    def track_speedup_sdpa(self, record):
        return record["metrics"]["speedup_sdpa"]

    def track_speedup_eager(self, record):
        return record["metrics"]["speedup_eager"]

    def track_density_attn(self, record):
        return record["metrics"]["density_attn"]

    def track_density_mlp(self, record):
        return record["metrics"]["density_mlp"]

    track_speedup_per_document.unit = "ratio"
    track_speedup_sdpa.unit = track_speedup_eager.unit = "ratio"
    track_density_attn.unit = track_density_mlp.unit = "fraction of blocks kept"
