"""Training on several processes (torchrun) as one: joining the group, sharing the batches, pooling numbers.

A single process (world size 1) never calls torch.distributed: every function here returns at once. Under
torchrun each of N processes trains a copy of the model on every N-th image of the same shuffled order, so the
global batch is that of a single process; DistributedDataParallel averages the gradients.
"""
import contextlib
import os

import torch
import torch.distributed as dist
import torch.nn as nn


def join(device):
    """(rank, world size) of this process; under torchrun (WORLD_SIZE > 1) it also joins the process group,
    NCCL on CUDA and gloo on the CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world


def wrap(model, world):
    """`model` itself, or under several processes the model in DistributedDataParallel (which averages the
    gradients across processes during backward). Optimise and save the plain model; run the wrapped one."""
    return nn.parallel.DistributedDataParallel(model) if world > 1 else model


class ShuffledShare(torch.utils.data.Sampler):
    """The indices of one process's share of an epoch: a shuffle drawn from (seed, epoch), every world-th.

    Every process draws the same shuffle, so N processes together see the images of one process's epoch in
    the same order; the shuffle is padded by repeating its start to a multiple of `world`. Call
    set_epoch(epoch) before each epoch.
    """

    def __init__(self, dataset, seed=0, rank=0, world=1):
        self.dataset, self.n, self.seed, self.rank, self.world, self.epoch = dataset, len(dataset), seed, rank, world, 0

    def set_epoch(self, epoch):
        """This epoch's shuffle, and the dataset's augmentations of this epoch where it has a set_epoch."""
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        order += order[:(-self.n) % self.world]  # pad to a multiple of world
        return iter(order[self.rank::self.world])

    def __len__(self):
        return -(-self.n // self.world)  # ceil(n / world)


def sum_over_processes(values, device, world):
    """A list of floats summed over all processes (returned as they are in a single process)."""
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def finite_everywhere(loss):
    """Whether the loss is finite in every process (of the group, if one was joined), so that all of them stop
    together when one is not."""
    finite = torch.isfinite(loss.detach()).to(torch.int32)  # () 1 or 0
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite)


def share_buffers(model, world):
    """Give every process rank 0's buffers (BatchNorm's running statistics, the ones rank 0 saves)."""
    if world > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)


@contextlib.contextmanager
def first_process_per_machine_first(world):
    """Run the block in the first process of each machine, then in the others (so a missing data file is
    downloaded once per machine, not by every process at the same path)."""
    first = int(os.environ.get("LOCAL_RANK", "0")) == 0
    if world > 1 and not first:
        dist.barrier()
    yield
    if world > 1 and first:
        dist.barrier()
