"""asv benchmarks for Long Exposure: one LoRA training step dense (eager, SDPA) vs Long Exposure,
and the measured end-to-end ratios and densities as track_*.

    asv run --quick --bench long_exposure        # BENCHLAB_SCALE=tiny|small|paper
"""

from benchlab.core import experiments
from benchlab.long_exposure import workload as wl


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
        self.trainer = wl.trainer(c, c.model, "lora", c.seq_lens[0], mode=mode)
        self.trainer.step()  # warm-up

    def time_step(self, mode):
        self.trainer.step()

    def peakmem_step(self, mode):
        self.trainer.step()


class LoraStepResults:
    """The same step's side-by-side speedups and Long Exposure's densities, measured once."""

    timeout = 600

    def setup_cache(self):
        c = _config()
        _threads(c)
        L = c.seq_lens[0]
        trainers = {m: wl.trainer(c, c.model, "lora", L, mode=m) for m in LoraStepSuite.params}
        t = wl.speedups(wl.side_by_side(trainers, c.warmup, c.rounds))
        le = trainers["le"].stats
        return {"speedup_sdpa": t["speedup_sdpa"], "speedup_eager": t["speedup_eager"],
                "density_attn": le.density("attn"), "density_mlp": le.density("mlp")}

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
