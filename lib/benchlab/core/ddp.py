"""torchrun / DDP plumbing: which process am I, sharding a global batch, averaging across processes.

    torchrun --standalone --nproc_per_node=2 -m benchlab long-exposure finetune ...
    torchrun --standalone --nproc_per_node=2 -m benchlab.sublora.cli train --config-file c.yaml

`placement()` picks the device and backend from --device: under torchrun on CUDA nccl with one
GPU per process (cuda:LOCAL_RANK), on CPU gloo (the CPU tests use gloo with 2 processes).
Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK set) `setup()` joins the process group with that
backend. Without torchrun it is a single process and every helper is a no-op.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import BenchlabError


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


def backend(device: str) -> str:
    """The process-group backend for `device`: nccl on CUDA, gloo on CPU."""
    return "nccl" if str(device).startswith("cuda") else "gloo"


def placement(requested: str, env: Mapping[str, str], cuda: bool,
              field: str = "--device") -> tuple[str, str]:
    """(backend, device) of this process for `requested` in auto / cpu / cuda, from the
    environment `env` (torchrun's LOCAL_RANK) and whether CUDA is available (`cuda`): auto is
    cuda when available; on CUDA nccl and cuda:LOCAL_RANK (one GPU per process, cuda:0 without
    torchrun), on CPU gloo and cpu. cuda without CUDA, or an unknown name: a BenchlabError
    naming `field`."""
    if requested not in ("auto", "cpu", "cuda"):
        raise BenchlabError(f"{field}: unknown device {requested!r}; choose auto, cpu or cuda")
    if requested == "cuda" and not cuda:
        raise BenchlabError(f"{field}: cuda requested but torch sees no CUDA device; use "
                            f"{field} cpu (or auto)")
    if requested == "cpu" or not cuda:
        return backend("cpu"), "cpu"
    device = f"cuda:{int(env.get('LOCAL_RANK', '0'))}"
    return backend(device), device


def setup(device: str = "cpu") -> Dist:
    """Join the torchrun process group if there is one (idempotent), with backend(device); on
    CUDA this process's GPU is cuda:LOCAL_RANK."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend=backend(device))
    info = Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if device.startswith("cuda"):
        torch.cuda.set_device(info.local_rank)
    return info


def wrap(model: torch.nn.Module, info: Dist, device: str = "cpu") -> torch.nn.Module:
    """`model` in DistributedDataParallel when there are several processes (gradients of the
    trainable parameters averaged over processes in backward; rank 0's parameters and buffers
    broadcast at construction), else `model` itself."""
    if not info.active:
        return model
    ids = [torch.device(device).index or 0] if str(device).startswith("cuda") else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def local_batch(global_batch: int, info: Dist, field: str = "batch_size") -> int:
    """This process's rows of a global batch; BenchlabError naming `field` when the world size
    does not divide it."""
    if global_batch % info.world:
        raise BenchlabError(f"{field}: global batch {global_batch} does not divide by the "
                            f"{info.world} processes; choose a multiple of {info.world}")
    return global_batch // info.world


def shard(batch: torch.Tensor, info: Dist, field: str = "batch_size") -> torch.Tensor:
    """Rows [rank b, (rank + 1) b) of a global batch (b = its rows / world size)."""
    b = local_batch(batch.shape[0], info, field)
    return batch[info.rank * b:(info.rank + 1) * b]


def mean(value: torch.Tensor, info: Dist) -> torch.Tensor:
    """The average of `value` over all processes (a copy; the input is left alone)."""
    out = total(value, info)
    if info.active:
        out /= info.world
    return out


def total(value: torch.Tensor, info: Dist) -> torch.Tensor:
    """The sum of `value` over all processes (a copy on value's device; the input is left
    alone). Under nccl the reduction runs on this process's GPU (nccl reduces CUDA tensors
    only), so callers may pass CPU tensors on any backend."""
    out = value.detach().clone()
    if info.active:
        if dist.get_backend() == "nccl" and out.device.type != "cuda":
            moved = out.to(torch.device("cuda", torch.cuda.current_device()))
            dist.all_reduce(moved, op=dist.ReduceOp.SUM)
            return moved.to(out.device)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def broadcast(obj, info: Dist, src: int = 0):
    """Process `src`'s `obj` (any picklable object) on every process; others pass None."""
    if not info.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier(info: Dist) -> None:
    if info.active:
        dist.barrier()


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
