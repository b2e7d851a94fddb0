"""asv benchmarks for Long Exposure: one LoRA training step dense (eager, SDPA) vs Long Exposure,
and the measured end-to-end ratios and densities as track_*.

    asv run --quick --bench long_exposure        # BENCHLAB_SCALE=tiny|small|paper
"""

from benchlab.core import experiments
from benchlab.core.timing import Timer, resolve_device
from benchlab.long_exposure import end2end_cases
from benchlab.long_exposure import workload as wl
from benchlab.long_exposure.measure import measure_end2end


def _config():
    return experiments.config("long_exposure")


def _threads(c):
    if c.threads:  # the scale's thread count (1 at tiny: shared CI machines)
        import torch

        torch.set_num_threads(c.threads)


class LoraStepSuite:
    """A LoRA step on the scale's model at its shortest end-to-end length."""

    params = ["eager", "sdpa", "le"]
    param_names = ["mode"]
    timeout = 600

    def setup(self, mode):
        c = _config()
        _threads(c)
        self.trainer = wl.trainer(c, c.model, "lora", c.seq_lens[0], mode=mode,
                                  device=resolve_device())
        self.trainer.step()  # warm-up

    def time_step(self, mode):
        self.trainer.step()

    def peakmem_step(self, mode):
        self.trainer.step()


class LoraStepResults:
    """The same step's side-by-side speedups and Long Exposure's densities, measured once by
    the end-to-end LoRA case at the shortest length (long_exposure.measure.measure_end2end)."""

    timeout = 600

    def setup_cache(self):
        c = _config()  # measure_end2end sets the scale's threads itself
        L = c.seq_lens[0]
        case = next(k for k in end2end_cases(c) if k.method == "lora" and k.seq_len == L)
        m = measure_end2end(case, c, Timer(None, resolve_device()))
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
