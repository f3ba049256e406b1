"""One battery for every tensor-network layer type: the TensorNetworkLayer protocol.

Each layer type is built small and in float64, then checked for: forward == the dense map built
from ``to_dense()`` (plus its bias), gradcheck, a state_dict round trip into a fresh layer,
``torch.compile(fullgraph=True)`` == eager, autocast, ``summary`` listing it, and ``cost()``
naming the strategy the forward pass runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

import tnlayers
from tnlayers import TensorNetworkLayer

F64 = torch.float64


@dataclass(frozen=True)
class Case:
    """How to build one layer type and compute its output from ``to_dense()``."""

    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    conv: bool = False
    geometry: dict[str, object] | None = None


def _bias(layer: nn.Module) -> torch.Tensor | None:
    kron = getattr(layer, "kron_bias", None)
    found = kron() if kron is not None else None
    if found is not None:
        return found
    return getattr(layer, "bias", None) if not isinstance(layer, nn.Sequential) else layer[1].bias


def _dense_output(case: Case, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's map computed from its materialized weight, not by its forward pass."""
    w = layer.to_dense()  # type: ignore[operator]
    assert w.shape == (layer.out_features, layer.in_features)
    if case.conv:
        groups = getattr(layer, "groups", 1)
        kernel = w.reshape(w.shape[0], x.shape[1] // groups, *layer.kernel_size)  # type: ignore[union-attr]
        return F.conv2d(x, kernel, _bias(layer), **(case.geometry or {}))
    y = x.to(w.dtype) @ w.T
    bias = _bias(layer)
    return y if bias is None else y + bias


def _low_rank() -> nn.Module:
    conv = nn.Conv2d(3, 5, 3, padding=1, dtype=F64)
    return tnlayers.compression.LowRankConv2d(conv, 2)


def _qubit() -> nn.Module:
    circuit = tnlayers.QubitCircuit(3).ry(0).ry(1).ry(2).cnot(0, 1).cnot(1, 2).ry(0)
    return tnlayers.QubitCircuitLinear(circuit, dtype=F64)


# A pass-through leg p (block-diagonal weight) with a bond and a leg order that needs permutes.
_PASS_SIZES = {"p": 2, "a": 2, "b": 2, "i": 3, "j": 2}

CASES: dict[str, Case] = {
    "TNLinear": Case(lambda: tnlayers.TNLinear(tnlayers.mpo((2, 3), (3, 2), 2), dtype=F64), (4, 6)),
    "TNLinear-low-rank": Case(
        lambda: tnlayers.TNLinear(tnlayers.low_rank(6, 5, 2), dtype=F64), (4, 6)
    ),
    "TNLinear-block-diagonal": Case(
        lambda: tnlayers.TNLinear(
            tnlayers.Network.from_einsum("pai,pjb,ab : ip -> pj", _PASS_SIZES), dtype=F64
        ),
        (4, 6),
    ),
    "TNLinear-butterfly": Case(lambda: tnlayers.TNLinear(tnlayers.butterfly(8), dtype=F64), (3, 8)),
    "MPOLinear": Case(lambda: tnlayers.MPOLinear(12, 8, bond=2, dtype=F64), (3, 12)),
    "MPOConv2d": Case(
        lambda: tnlayers.MPOConv2d(2, 4, 3, padding=1, bond=2, dtype=F64),
        (2, 2, 5, 5),
        conv=True,
        geometry={"padding": 1},
    ),
    "TNConv2d-ring": Case(
        lambda: tnlayers.TNConv2d(
            2, 4, 3, padding=1, network=tnlayers.tensor_ring((3, 6), (2, 2), 2), dtype=F64
        ),
        (2, 2, 5, 5),
        conv=True,
        geometry={"padding": 1},
    ),
    "TNConv2d-grouped": Case(
        lambda: tnlayers.TNConv2d(
            4, 6, 3, padding=1, groups=2, network=tnlayers.cp(18, 6, 3, parts=2), dtype=F64
        ),
        (2, 4, 5, 5),
        conv=True,
        geometry={"padding": 1, "groups": 2},
    ),
    "KronLinear": Case(lambda: tnlayers.KronLinear(12, 6, bodies=2, terms=2, dtype=F64), (3, 12)),
    "GivensLinear": Case(lambda: tnlayers.GivensLinear(6, dtype=F64), (4, 6)),
    "GivensLinear-clements": Case(
        lambda: tnlayers.GivensLinear(6, layout="clements", dtype=F64), (4, 6)
    ),
    "QubitCircuitLinear": Case(_qubit, (4, 8)),
    "LowRankConv2d": Case(_low_rank, (2, 3, 5, 5), conv=True, geometry={"padding": 1}),
}
IDS = list(CASES)


def _layer_and_input(name: str, seed: int = 0) -> tuple[Case, nn.Module, torch.Tensor]:
    case = CASES[name]
    torch.manual_seed(seed)
    layer = case.build()
    x = torch.randn(*case.input_shape, dtype=F64)
    return case, layer, x


@pytest.mark.parametrize("name", IDS)
def test_follows_the_protocol(name):
    _, layer, _ = _layer_and_input(name)
    assert isinstance(layer, TensorNetworkLayer)
    assert layer.num_params == sum(
        p.numel() for n, p in layer.named_parameters() if "bias" not in n
    )


@pytest.mark.parametrize("name", IDS)
def test_forward_equals_the_dense_map(name):
    case, layer, x = _layer_and_input(name)
    torch.testing.assert_close(layer(x), _dense_output(case, layer, x))
    layer.eval()
    with torch.no_grad():  # the inference path (cached weight where there is one)
        torch.testing.assert_close(layer(x), _dense_output(case, layer, x))


@pytest.mark.parametrize("name", IDS)
def test_gradcheck(name):
    _, layer, x = _layer_and_input(name)
    params = [p for p in layer.parameters()]
    x.requires_grad_(True)

    def run(x: torch.Tensor, *values: torch.Tensor) -> torch.Tensor:
        state = dict(zip([n for n, _ in layer.named_parameters()], values, strict=True))
        return torch.func.functional_call(layer, state, (x,))

    assert torch.autograd.gradcheck(run, (x, *params), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", IDS)
def test_state_dict_round_trip_into_a_fresh_layer(name):
    _, layer, x = _layer_and_input(name, seed=0)
    _, fresh, _ = _layer_and_input(name, seed=1)
    assert not torch.equal(fresh(x), layer(x))
    fresh.load_state_dict(layer.state_dict())
    assert torch.equal(fresh(x), layer(x))


@pytest.mark.slow
@pytest.mark.parametrize("name", IDS)
def test_compile_fullgraph_equals_eager(name):
    _, layer, x = _layer_and_input(name)
    compiled = torch.compile(layer, fullgraph=True)
    y = compiled(x)
    torch.testing.assert_close(y, layer(x))
    weights = torch.arange(y.numel(), dtype=y.dtype).reshape(y.shape)
    (y * weights).sum().backward()
    compiled_grads = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    (layer(x) * weights).sum().backward()
    for got, want in zip(compiled_grads, (p.grad for p in layer.parameters()), strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("name", IDS)
def test_autocast(name):
    case, layer, x = _layer_and_input(name)
    layer = layer.float()
    x = x.float()
    reference = _dense_output(case, layer, x).detach()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert y.shape == reference.shape
    torch.testing.assert_close(y.float(), reference, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("name", IDS)
def test_summary_lists_it_with_the_strategy_that_runs(name):
    _case, layer, x = _layer_and_input(name)
    model = nn.Sequential(layer)
    text = tnlayers.summary(model, batch=x.shape[0], input_size=x.shape[1:])
    row = next(line for line in text.splitlines() if type(layer).__name__ in line)
    mode = "training" if layer.training else "inference"
    assert f" {layer.cost(x.shape[0], mode=mode).strategy} " in row  # type: ignore[operator]
    assert f"{layer.num_params:,}" in row
    assert "ρ" in text


def _spy(monkeypatch, layer: nn.Module) -> list[str]:
    """Record the strategy each forward pass of ``layer`` runs."""
    seen: list[str] = []
    if isinstance(layer, tnlayers.TNLinearBase):
        original = tnlayers.TNLinearBase._execution

        def execution(self, *args, **kwargs):  # what a forward pass looks up, and then runs
            found = original(self, *args, **kwargs)
            seen.append(found[0])
            return found

        monkeypatch.setattr(tnlayers.TNLinearBase, "_execution", execution)
    elif isinstance(layer, tnlayers.GivensLinear):
        import tnlayers._circuits.givens_layer as module

        forward = module.givens_forward

        def givens(x, blocks, plan, strategy):
            seen.append(strategy)
            return forward(x, blocks, plan, strategy)

        monkeypatch.setattr(module, "givens_forward", givens)
        cached = tnlayers.GivensLinear._cached_matrix

        def cached_matrix(self, *args):  # inference's materialize: one GEMM by the cached U
            seen.append("materialize")
            return cached(self, *args)

        monkeypatch.setattr(tnlayers.GivensLinear, "_cached_matrix", cached_matrix)
    else:
        monkeypatch.setattr(type(layer), "forward", _recording(type(layer).forward, seen))
    return seen


def _recording(forward, seen: list[str]):
    def wrapped(self, x):
        seen.append(self.chosen_strategy(x.shape[0]))
        return forward(self, x)

    return wrapped


@pytest.mark.parametrize("name", IDS)
@pytest.mark.parametrize("mode", ["training", "inference"])
def test_cost_names_the_strategy_that_runs(monkeypatch, name, mode):
    _, layer, x = _layer_and_input(name)
    seen = _spy(monkeypatch, layer)
    with torch.set_grad_enabled(mode == "training"):
        layer(x)
    samples = x.shape[0]
    report = layer.cost(samples, mode=mode)  # type: ignore[operator]
    assert isinstance(report, tnlayers.CostReport)
    assert report.strategy == seen[-1]
    assert layer.chosen_strategy(samples, training=mode == "training") == seen[-1]  # type: ignore[operator]
    assert report.strategy in report.strategies
    assert report.params == layer.num_params
    assert report.dense_params == layer.in_features * layer.out_features
    assert report.to_dict()["flops"] == report.strategies[report.strategy].flops > 0
    assert report.strategy in str(report)
