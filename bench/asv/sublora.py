"""SubLoRA in asv: the subspace training step per projector next to a plain LoRA step, and one
sweep point's results (bound, empirical bpd, compressed size) as track_* benchmarks. Every track_
value is read from a record that core.session.Run measures in setup_cache (the bench module's
measuring functions, on the bench's own cases: Run.cases(kind)).

    BENCHLAB_SCALE=tiny asv run --quick --python=same --bench sublora
"""


from benchlab.core import timing
from benchlab.core.asv_suite import Suite

Base = Suite("sublora")




class StepSuite(Base):
    """The scale's step cases at their first d, one per projector."""

    params = [list(Base.config.step_projectors)]
    param_names = ["projector"]

    def setup_cache(self):
        """Subspace step / plain LoRA step per projector: the step case's record (its
        step_ratio: the paired ratio over rotated rounds, goal <= 1.5)."""
        run = self.run()
        cases = run.cases("step")
        return {c.projector: run.measure("step", c) for c in cases if c.d == cases[0].d}

    def setup(self, records, projector):
        from benchlab.sublora.sweep import step_pair

        d = records[projector]["config"]["case"]["d"]
        _, self.sub_step, self.lora_step = step_pair(self.config, d, projector, self.device)
        self.sub_step()  # warm-up (a dense P is generated on first use)
        self.lora_step()

    def time_subspace_step(self, records, projector):
        timing.synced(self.sub_step, self.device)()

    def time_lora_step(self, records, projector):
        timing.synced(self.lora_step, self.device)()

    def track_step_ratio(self, records, projector):
        return records[projector]["metrics"]["step_ratio"]

    def peakmem_subspace_step(self, records, projector):
        self.sub_step()

    track_step_ratio.unit = "ratio"


class SweepPoint(Base):
    """The first trained case of the scale's sweep (tiny: the short scratch run of the grouped
    mode; not w = 0 or a count model): train, quantize, code, bound; its record."""

    def setup_cache(self):
        from benchlab.sublora import REFERENCES

        run = self.run()
        return run.measure("sweep", next(c for c in run.cases("sweep")
                                         if c.mode not in REFERENCES))

    def track_bound_value(self, record):
        return record["metrics"]["bound_value"]

    def track_empirical_bpd(self, record):
        return record["metrics"]["empirical_bpd"]

    def track_compressed_size_bits(self, record):
        return record["metrics"]["compressed_size_bits"]

    def track_bound_eval_seconds(self, record):
        return record["metrics"]["eval_seconds"]

    track_bound_value.unit = track_empirical_bpd.unit = "bits/token"
    track_compressed_size_bits.unit = "bits"
    track_bound_eval_seconds.unit = "seconds"
