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


@pytest.fixture
def full_disk(monkeypatch):
    """full_disk(should_fail): from then on, each file minunet writes (through minunet.atomic) for which
    should_fail(path, data) is true fails as on a full disk, OSError ENOSPC, before any of it reaches the disk."""
    import errno

    from minunet import atomic

    def fill(should_fail):
        real = atomic._temporary_copy

        def copy(path, data):
            if should_fail(str(path), data):
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(path, data)
        monkeypatch.setattr(atomic, "_temporary_copy", copy)
    return fill
