"""core.ddp.placement: the (backend, device) of a process for --device auto / cpu / cuda, from
torchrun's environment and CUDA availability; every branch, no GPU needed."""

import pytest

from benchlab.core import ddp
from benchlab.core.errors import BenchlabError

TORCHRUN = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}


@pytest.mark.parametrize(("requested", "env", "cuda", "want"), [
    ("auto", {}, True, ("nccl", "cuda:0")),           # auto picks CUDA when it is there
    ("auto", {}, False, ("gloo", "cpu")),             # ... and the CPU when it is not
    ("auto", TORCHRUN, True, ("nccl", "cuda:1")),     # torchrun: one GPU per process
    ("auto", TORCHRUN, False, ("gloo", "cpu")),
    ("cuda", {}, True, ("nccl", "cuda:0")),
    ("cuda", TORCHRUN, True, ("nccl", "cuda:1")),
    ("cpu", {}, True, ("gloo", "cpu")),               # cpu asked for: CPU even with a GPU
    ("cpu", TORCHRUN, True, ("gloo", "cpu")),
    ("cpu", TORCHRUN, False, ("gloo", "cpu")),
])
def test_placement(requested, env, cuda, want):
    assert ddp.placement(requested, env, cuda) == want
    assert ddp.backend(want[1]) == want[0]


def test_cuda_without_cuda_and_unknown_names_are_one_line_errors():
    with pytest.raises(BenchlabError, match=r"^--device: cuda requested but torch sees no CUDA "
                                            r"device; use --device cpu \(or auto\)$"):
        ddp.placement("cuda", TORCHRUN, False)
    with pytest.raises(BenchlabError, match=r"^--gpu: unknown device 'tpu'"):
        ddp.placement("tpu", {}, True, field="--gpu")
