"""PyTorch 2 integration: torch.compile(fullgraph=True) and DDP (gloo, CPU)."""

import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import tnlayers
from tnlayers import TNLinear


@pytest.mark.slow
def test_compile_fullgraph_matches_eager():
    torch._dynamo.reset()
    layer = TNLinear(tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 2))
    compiled = torch.compile(layer, fullgraph=True)
    # Both strategies, and sizes off the power-of-two buckets that compiled graphs plan for.
    for batch in (8, 5, 512, 300):
        x = torch.randn(batch, 784)
        torch.testing.assert_close(compiled(x), layer(x), rtol=1e-5, atol=1e-5)
    compiled(torch.randn(8, 784)).sum().backward()
    assert all(p.grad is not None for p in layer.parameters())


@pytest.mark.slow
def test_compile_fullgraph_mpo_conv_matches_eager():
    torch._dynamo.reset()
    conv = tnlayers.MPOConv2d(3, 8, 3, bond=2, padding="same")
    compiled = torch.compile(conv, fullgraph=True)
    for batch in (2, 3):
        x = torch.randn(batch, 3, 10, 10)
        torch.testing.assert_close(compiled(x), conv(x), rtol=1e-5, atol=1e-5)
    compiled(torch.randn(2, 3, 10, 10)).sum().backward()
    assert all(p.grad is not None for p in conv.parameters())


@pytest.mark.slow
def test_compile_fullgraph_kron_layer_with_kron_bias_matches_eager():
    torch._dynamo.reset()
    layer = tnlayers.KronLinear(36, 36, bodies=2, terms=2)
    compiled = torch.compile(layer, fullgraph=True)
    x = torch.randn(8, 36)
    torch.testing.assert_close(compiled(x), layer(x), rtol=1e-5, atol=1e-5)
    compiled(x).sum().backward()
    assert all(p.grad is not None for p in layer.parameters())


def test_mpo_conv_autocast_bfloat16_close_to_float32():
    conv = tnlayers.MPOConv2d(3, 8, 3, bond=2, padding=1)
    x = torch.randn(4, 3, 9, 9)
    expected = conv(x)
    for strategy in ("sequential", "materialise"):
        conv.strategy = strategy
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(x)
        assert y.dtype == torch.bfloat16
        torch.testing.assert_close(y.float(), expected, rtol=0.05, atol=0.05)


def _model() -> nn.Module:
    torch.manual_seed(123)
    return nn.Sequential(TNLinear(tnlayers.mpo((4, 4), (2, 4), 2)), nn.Tanh(), nn.Linear(8, 3))


def _data():
    generator = torch.Generator().manual_seed(7)
    return torch.randn(16, 16, generator=generator), torch.randint(0, 3, (16,), generator=generator)


def _train(model, x, y, steps=3):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def _ddp_worker(rank, world, init_file, out_file):
    # gloo picks its network interface from the hostname; on a fresh VM that name can resolve to
    # an address the process cannot reach, and both ranks then wait until the deadline. Both
    # workers are on this machine: use the loopback interface.
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=60),
    )
    torch.set_num_threads(1)
    model = nn.parallel.DistributedDataParallel(_model())
    x, y = _data()
    shard = slice(rank * 8, (rank + 1) * 8)
    _train(model, x[shard], y[shard])
    if rank == 0:
        torch.save(model.module.state_dict(), out_file)
    # Leave together: a rank tearing gloo down while the other still works can hang it.
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_processes_match_single_process():
    with tempfile.TemporaryDirectory() as tmp:
        init_file, out_file = str(Path(tmp) / "init"), str(Path(tmp) / "state.pt")
        context = mp.spawn(_ddp_worker, args=(2, init_file, out_file), nprocs=2, join=False)
        deadline = time.monotonic() + 120
        while not context.join(timeout=5):
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.kill()
                pytest.fail("the two DDP workers did not finish within 120 s")
        distributed = torch.load(out_file)
    single = _model()
    x, y = _data()
    _train(single, x, y)  # mean loss over 16 rows = DDP's average of two 8-row means
    for key, value in single.state_dict().items():
        torch.testing.assert_close(distributed[key], value, rtol=1e-5, atol=1e-6)
