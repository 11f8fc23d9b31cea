"""The EMA of a model's weights against the same average computed by hand."""
import io

import pytest
import torch
from torch import nn

from minunet.training.ema import EMA

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))


def step(model, seed):
    """Change every parameter and BatchNorm statistic of the model, as a training step would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g).to(p.device))
    model.train()
    model(torch.randn(5, 4, generator=g).to(next(model.parameters()).device))  # running stats, num_batches_tracked


def by_hand(states, decay):
    """The average of a list of state dicts (the first is the start): avg = d * avg + (1 - d) * current,
    d = min(decay, (1 + n) / (10 + n)); integer entries are the latest value."""
    avg = {k: v.clone() for k, v in states[0].items()}
    for n, current in enumerate(states[1:]):
        d = min(decay, (1 + n) / (10 + n))
        for k, v in current.items():
            avg[k] = d * avg[k] + (1 - d) * v if v.is_floating_point() else v.clone()
    return avg


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_state_close(module, expected):
    actual = module.state_dict()
    assert actual.keys() == expected.keys()
    for k, v in expected.items():
        assert torch.allclose(actual[k].cpu(), v.cpu(), rtol=1e-6, atol=1e-7), k


@pytest.mark.parametrize("decay", [0.2, 0.999])  # 0.2 caps d at the third update; 0.999 is warm-up throughout
def test_three_updates_match_the_hand_computation(decay):
    model = tiny_model()
    states = [snapshot(model)]
    ema = EMA(model, decay=decay)
    for seed in range(3):
        step(model, seed)
        states.append(snapshot(model))
        ema.update(model)
    assert ema.updates == 3
    assert_state_close(ema.module, by_hand(states, decay))
    assert ema.module[1].num_batches_tracked.item() == 3  # copied, not averaged
    assert not torch.allclose(ema.module[0].weight, model[0].weight)  # it is an average, not the model


def test_decay_zero_follows_the_model():
    model = tiny_model(1)
    ema = EMA(model, decay=0.0)
    for seed in range(2):
        step(model, seed)
        ema.update(model)
        for k, v in model.state_dict().items():
            assert torch.equal(ema.module.state_dict()[k], v), k


def test_state_dict_round_trip_continues_identically():
    model = tiny_model(2)
    ema = EMA(model, decay=0.9)
    for seed in range(2):
        step(model, seed)
        ema.update(model)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "ema": ema.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    resumed_model = tiny_model(3)  # other weights: everything must come from the checkpoint
    resumed_model.load_state_dict(saved["model"])
    resumed = EMA(resumed_model, decay=0.9)
    resumed.load_state_dict(saved["ema"])
    assert resumed.updates == 2 and resumed.current_decay() == ema.current_decay()
    for seed in (10, 11):
        step(model, seed)
        step(resumed_model, seed)
        ema.update(model)
        resumed.update(resumed_model)
    for k, v in ema.module.state_dict().items():
        assert torch.equal(resumed.module.state_dict()[k], v), k


def test_update_uses_no_gradient():
    model = tiny_model(4)
    ema = EMA(model)
    assert model.training and not ema.module.training  # the copy is in eval mode, the model untouched
    model(torch.randn(6, 4)).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    with torch.enable_grad():
        ema.update(model)
    assert all(not p.requires_grad and p.grad is None and p.grad_fn is None for p in ema.module.parameters())
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))
    assert all(p.requires_grad for p in model.parameters())
    assert not ema.module.training


def test_channels_last_and_another_device():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    ema = EMA(model, decay=0.5)  # built while the model is contiguous on the CPU
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device=device, memory_format=torch.channels_last)
    states = [{k: v.cpu() for k, v in snapshot(model).items()}]
    for seed in range(2):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=g).to(device))
        model.train()
        model(torch.randn(2, 3, 8, 8, generator=g).to(device).contiguous(memory_format=torch.channels_last))
        states.append({k: v.cpu() for k, v in snapshot(model).items()})
        ema.update(model)
    assert next(ema.module.parameters()).device.type == "cpu"
    assert_state_close(ema.module, by_hand(states, 0.5))


@pytest.mark.slow  # about 3 s: starting a process group
def test_distributed_data_parallel_model(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = tiny_model(6)
        wrapped = nn.parallel.DistributedDataParallel(model)
        ema = EMA(wrapped, decay=0.3)
        assert list(ema.module.state_dict()) == list(model.state_dict())  # no "module." prefix
        states = [snapshot(model)]
        step(wrapped.module, 0)
        states.append(snapshot(model))
        ema.update(wrapped)
    finally:
        dist.destroy_process_group()
    assert_state_close(ema.module, by_hand(states, 0.3))
