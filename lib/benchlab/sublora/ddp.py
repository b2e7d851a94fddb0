"""torchrun / DDP plumbing: which process am I, and averaging across processes.

    torchrun --standalone --nproc_per_node=2 -m benchlab.sublora.cli train --config-file c.yaml

Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK set) `setup()` joins the process group: nccl when
CUDA is there, gloo otherwise (the CPU test uses gloo with 2 processes). Without torchrun it is
a single process and every helper is a no-op.
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str = "cpu") -> Dist:
    """Join the torchrun process group if there is one (idempotent)."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return Dist()
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
    info = Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if device.startswith("cuda"):
        torch.cuda.set_device(info.local_rank)
    return info


def mean(value: torch.Tensor, info: Dist) -> torch.Tensor:
    """The average of `value` over all processes (a copy; the input is left alone)."""
    out = value.detach().clone()
    if info.active:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        out /= info.world
    return out


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
