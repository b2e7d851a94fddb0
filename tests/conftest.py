"""Shared by every test: one torch intra-op thread per process.

Unit tests time nothing, their tensors are small, and CI runs two xdist workers on two cores, so
one thread each is both the fastest and the steadiest setting.
"""

import pytest


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
