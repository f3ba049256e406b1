"""On a CUDA device: every layer family equals its CPU twin, trains, caches and autocasts.

Skipped where no CUDA device is present (the CI machines); ``benchmarks/gpu.sh`` runs this module
first on a GPU machine. Each test compares the device result with the same layer on the CPU, so a
device-only path (a kernel choice, a dtype rule, a host/device mix-up) cannot pass unnoticed.
"""

import copy

import pytest
import torch
from torch import nn

import tnlayers

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CUDA = torch.device("cuda")


def _layers() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "mpo": tnlayers.TNLinear(tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 4)),
        "kron": tnlayers.KronLinear(784, 784, bodies=2, terms=2),
        "btt": tnlayers.TNLinear(tnlayers.btt(784, 256, 2)),
        "butterfly": tnlayers.TNLinear(tnlayers.butterfly(64)),
        "ring": tnlayers.TNLinear(tnlayers.tensor_ring((4, 8), (4, 8), 2)),
        "givens": tnlayers.GivensLinear(32, layout="clements"),
        "conv": tnlayers.TNConv2d(
            8, 16, 3, network=tnlayers.mpo((8, 3, 3), (4, 2, 2), 2), padding=1
        ),
    }


NAMES = ["mpo", "kron", "btt", "butterfly", "ring", "givens", "conv"]


def _input(name: str, layer: nn.Module, batch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    if name == "conv":
        return torch.randn(batch, 8, 10, 10, generator=generator, dtype=torch.float64)
    features = layer.in_features if hasattr(layer, "in_features") else layer.n
    return torch.randn(batch, features, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("batch", [1, 64, 1024])
def test_forward_and_gradients_equal_the_cpu_float64(name, batch):
    cpu = _layers()[name].double()
    gpu = copy.deepcopy(cpu).to(CUDA)
    x = _input(name, cpu, batch)
    y_cpu = cpu(x)
    y_gpu = gpu(x.to(CUDA))
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, rtol=1e-10, atol=1e-10)
    y_cpu.square().sum().backward()
    y_gpu.square().sum().backward()
    for (n, a), (_, b) in zip(cpu.named_parameters(), gpu.named_parameters(), strict=True):
        torch.testing.assert_close(b.grad.cpu(), a.grad, rtol=1e-8, atol=1e-8, msg=n)


def test_the_inference_cache_follows_a_fused_optimiser_step_on_the_device():
    layer = tnlayers.TNLinear(tnlayers.mpo(64, 64, 4), strategy="materialize").to(CUDA).eval()
    x = torch.randn(32, 64, device=CUDA)
    with torch.no_grad():
        before = layer(x)
    opt = torch.optim.Adam(layer.parameters(), lr=0.1, fused=True)
    layer(x).sum().backward()
    opt.step()
    with torch.no_grad():
        after = layer(x)
        expected = x @ layer.to_dense().T + layer.bias
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected)


def test_bfloat16_autocast_keeps_the_cores_in_float32():
    layer = tnlayers.TNLinear(tnlayers.mpo((4, 8, 8, 4), (4, 8, 8, 4), 8)).to(CUDA)
    x = torch.randn(256, 1024, device=CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.bfloat16
    reference = x.double() @ layer.to_dense().double().T + layer.bias.double()
    # bf16 has 8 bits of mantissa: a relative error of a few 1e-3 is the format's, not ours.
    error = (y.double() - reference).norm() / reference.norm()
    assert error < 1e-2, error
    y.float().sum().backward()
    assert all(p.grad.dtype == torch.float32 for p in layer.parameters())


def test_compiled_layer_matches_eager_on_the_device():
    layer = tnlayers.TNLinear(tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 4)).to(CUDA)
    x = torch.randn(128, 784, device=CUDA)
    compiled = torch.compile(layer, fullgraph=True)
    torch.testing.assert_close(compiled(x), layer(x), rtol=1e-4, atol=1e-4)


def test_the_timed_sequential_path_is_the_one_reported_on_the_device():
    """On the device's own cost model, a grouped sequential path is still only a bet: "auto"
    times it against the path with the fewest FLOPs, and the report shows the one that runs."""
    layer = tnlayers.TNLinear(tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 2)).to(CUDA).double()
    x = torch.randn(64, 784, device=CUDA, dtype=torch.float64)
    out = layer(x)
    report = layer.cost(64)
    assert report.basis in ("model", "timed")
    decision = layer.decision(64)
    kept = layer.plan(64).strategies["sequential"]
    expected_path = kept.fewest_flops if decision.fewest_flops_path else kept.contractions[0]
    assert report.plan.strategies["sequential"].contractions == (expected_path,)
    expected = x @ layer.to_dense().T + layer.bias
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
