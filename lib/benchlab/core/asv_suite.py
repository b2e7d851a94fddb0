"""What every asv benchmark class of the suite shares (bench/asv/): the experiment's config at
the scale in $BENCHLAB_SCALE (default tiny), the device (auto, or $BENCHLAB_DEVICE, as
--bench-device), the suite's torch threads ($BENCHLAB_THREADS; default 1 on CPU, as CI's
--bench-threads 1; 0 keeps torch's default) and a Timer for the experiment's measuring
functions (`measurer()`), the ones its bench module calls.

    Base = Suite("moe_routing")          # in bench/asv/moe_routing.py
    class Routers(Base):
        def setup(self, routing): ... self.config, self.device, self.measurer() ...
"""

import os

from . import experiments, timing


def apply_threads() -> int:
    """Set torch's intra-op threads from $BENCHLAB_THREADS (1 on CPU by default); the count."""
    import torch

    default = "1" if not torch.cuda.is_available() else "0"
    n = int(os.environ.get("BENCHLAB_THREADS", default))
    if n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def Suite(experiment: str) -> type:
    """A base class for one experiment's asv classes: `config`, `device`, `threads` as class
    attributes (set when the benchmark module is imported, in each asv process) and `measurer()`
    (not `timer`: asv reads a `timer` attribute as its clock)."""
    threads = apply_threads()
    config = experiments.config(experiment)
    device = timing.resolve_device(os.environ.get("BENCHLAB_DEVICE", "auto"))

    class Base:
        timeout = 600

        def measurer(self) -> timing.Timer:
            return timing.Timer(None, self.device)

        @classmethod
        def run(cls):
            """The suite's core.session.Run (its scale, config and device; records in memory),
            through which the asv classes measure the bench's own cases."""
            from .session import Run

            return Run(cls.experiment, os.environ.get("BENCHLAB_SCALE", "tiny"),
                       device=cls.device, config=cls.config)

        @classmethod
        def measured(cls, kind: str) -> dict:
            """{case id: metrics} of the records Run.measure makes of every `kind` case."""
            from .session import case_id_of

            run = cls.run()
            return {case_id_of(c): run.measure(kind, c)["metrics"] for c in run.cases(kind)}

    Base.experiment, Base.config, Base.device, Base.threads = experiment, config, device, threads
    Base.__name__ = Base.__qualname__ = f"Suite[{experiment}]"
    return Base
