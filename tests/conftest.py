"""Fixtures shared by several test files."""
import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module of small-tensor tests: two threads on a shared 2-core machine
    oversubscribe it and make small operations many times slower. The old thread count comes back after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
