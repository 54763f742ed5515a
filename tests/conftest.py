"""Test-wide settings: one torch thread (tiny models run faster without thread overhead)."""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module's tests, whatever an earlier module set (the
    cores are shared with parallel test runs; oversubscription slows tiny convolutions
    many times), and the previous count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
