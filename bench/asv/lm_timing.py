"""Transformer timing in asv: one step of each of the scale's step cases (time_*, peakmem_*), and
result metrics (parameter count, FLOPs, loss, ours/peer and bf16/fp32 time ratios) as track_*.

    BENCHLAB_SCALE=tiny asv run --quick --python=same --bench lm_timing

The cases are the bench's own (step_cases, pair_cases at the scale; a step's results are its
variant's in the record of its size and context, the bench's sweep case). Every track_* value is
a metric of a record made by core.session.Run.measure (lm_timing.measure's functions, as the
bench module records them), measured once per class in setup_cache.
"""


from benchlab.core.asv_suite import Suite
from benchlab.lm_timing import pair_cases, step_cases, variant_tag

Base = Suite("lm_timing")
STEP_CASES = [c.id for c in step_cases(Base.config)]  # data: the scale's case ids
PAIR_CASES = [c.id for c in pair_cases(Base.config)]


def ok(metrics: dict) -> dict:
    if metrics.get("status", "ok") != "ok":
        raise NotImplementedError(metrics.get("reason", "did not run"))  # asv: skipped
    return metrics


def variant(records: dict, case_id: str) -> dict:
    """The metrics of step case `case_id` in its sweep record (records: Base.measured("sweep"))."""
    c = next(c for c in step_cases(Base.config) if c.id == case_id)
    m = ok(records[f"{c.size}-ctx{c.context}"])
    tag = variant_tag(c.mode, c.precision, c.attn, c.compile)
    return ok({k.removeprefix(tag + "."): v for k, v in m.items() if k.startswith(tag + ".")}
              | {"num_params": m["num_params"], "loss": m["loss"]})


class StepSuite(Base):
    """One step of a step case (model, batch and mode built as measure_sweep builds each)."""

    params = STEP_CASES
    param_names = ["case"]

    def setup(self, case):
        from benchlab.lm_timing import measure

        c = next(c for c in step_cases(self.config) if c.id == case)
        try:
            self.prep = measure.build(self.device, c.size, c.context, c.mode, c.precision,
                                attn=c.attn, batch=c.batch, vocab=c.vocab, compile=c.compile,
                                compile_backend=self.config.compile_backend)
        except measure.OOM as e:
            raise NotImplementedError(str(e)) from None  # asv: skipped
        self.prep.step()  # warm-up outside the timing

    def time_step(self, case):
        self.prep.step()

    def peakmem_step(self, case):
        self.prep.step()


class StepResults(Base):
    """The step cases' results in the sweep's records (measure_sweep): what the model counts and
    computes; the loss is the sweep record's (its first step on the fresh model)."""

    params = STEP_CASES
    param_names = ["case"]
    timeout = 1200

    def setup_cache(self):
        return self.measured("sweep")

    def track_num_params(self, records, case):
        return variant(records, case)["num_params"]

    def track_flops(self, records, case):
        return variant(records, case)["flops"]

    def track_loss(self, records, case):
        return variant(records, case)["loss"]

    track_num_params.unit = "parameters"
    track_flops.unit = "FLOP per step"
    track_loss.unit = "nats/token"


class PairRatio(Base):
    """The pair cases' records (measure_pair: rotated rounds): ours / transformers LLaMA and
    bf16 / fp32 step time, the median of the per-round ratios."""

    params = PAIR_CASES
    param_names = ["case"]
    timeout = 1200

    def setup_cache(self):
        return self.measured("pair")

    def track_ratio(self, records, case):
        return ok(records[case])["ratio"]

    track_ratio.unit = "ratio"
