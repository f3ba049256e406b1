"""PyTorch 2 integration: torch.compile(fullgraph=True) and DDP (gloo, CPU)."""

import pytest
import torch

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
    for strategy in ("sequential", "materialize"):
        conv.strategy = strategy
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(x)
        assert y.dtype == torch.bfloat16
        torch.testing.assert_close(y.float(), expected, rtol=0.05, atol=0.05)
