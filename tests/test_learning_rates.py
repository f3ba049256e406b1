"""Structure-aware learning rates: each tensor's fan-in from the legs, Qiu et al. 2024's table
of rates for low-rank, Kronecker, Monarch and BTT, and parameter groups an optimiser accepts."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from torch import nn
from torch.nn.utils import parametrize

import tnlayers
from tnlayers.analysis import tensor_fans

from .strategies import any_network


@given(any_network)
def test_absorbing_every_tensor_turns_the_input_into_the_output(net):
    # Each step scales the activation by fan_out / fan_in and keeps its batch legs, so the walk
    # ends on exactly the output legs iff in · Π fan_out / Π fan_in = out.
    fans = tensor_fans(net)
    assert sorted(f.position for f in fans.values()) == list(range(len(fans)))
    growth = math.prod(f.fan_out for f in fans.values())
    shrink = math.prod(f.fan_in for f in fans.values())
    assert net.padded_in_features * growth == net.padded_out_features * shrink


def test_fans_of_the_families_in_closed_form():
    fans = tensor_fans(tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), (3, 5, 2)))
    # core k reads (b_{k-1}, i_k) and writes (j_k, b_k)
    assert [(f.fan_in, f.fan_out) for f in fans.values()] == [
        (4, 4 * 3),
        (3 * 7, 4 * 5),
        (5 * 7, 4 * 2),
        (2 * 4, 4),
    ]
    fans = tensor_fans(tnlayers.low_rank(100, 30, 7))
    assert (fans["V"].fan_in, fans["U"].fan_in) == (100, 7)
    fans = tensor_fans(tnlayers.tucker((4, 5), (3, 2), (2, 3, 2, 1)))
    assert [fans[t].fan_in for t in ("u1", "u2", "core", "v1", "v2")] == [4, 5, 6, 2, 1]
    fans = tensor_fans(tnlayers.block_diagonal(12, 8, 4))
    assert (fans["B"].fan_in, fans["B"].fan_out, fans["B"].batch) == (3, 2, 4)


def _kappa(layer: nn.Module, d: int) -> dict[str, float]:
    """Each tensor's rate over a dense d × d layer's (Qiu et al.'s κ)."""
    model = nn.Sequential(layer, nn.Linear(d, d))
    rates = {r.name: r.lr for r in tnlayers.training.learning_rates(model, 1e-3)}
    dense = rates["1.weight"]
    return {name.split(".")[-1]: rate / dense for name, rate in rates.items() if "tensors" in name}


@pytest.mark.parametrize("rank", [1, 2, 4])
def test_rates_are_qiu_et_al_table_2(rank):
    d, root = 256, 16
    kappa = _kappa(tnlayers.TNLinear(tnlayers.low_rank(d, d, rank)), d)
    assert kappa == pytest.approx({"U": d / (2 * rank), "V": 1 / 2})
    kappa = _kappa(tnlayers.TNLinear(tnlayers.kronecker((root, root), (root, root), 1)), d)
    assert kappa == pytest.approx({"body1": root / 2, "body2": root / 2})
    # BTT: the first core to meet the input is their R, the second their L.
    kappa = _kappa(tnlayers.TNLinear(tnlayers.btt((root, root), (root, root), rank)), d)
    assert kappa == pytest.approx({"A": root / 2, "B": root / (2 * rank)})
    kappa = _kappa(tnlayers.TNLinear(tnlayers.monarch(d, d)), d)
    blocks = root
    assert kappa == pytest.approx({"A": blocks / 2, "B": blocks / 2})


def test_param_groups_cover_every_trainable_parameter_once():
    shared = tnlayers.TNLinear(tnlayers.tensor_ring((4, 4), (4, 4), 2))
    frozen = nn.Linear(16, 16)
    frozen.requires_grad_(False)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 16),
        shared,
        nn.LayerNorm(16),
        shared,
        frozen,
        tnlayers.MPOLinear(16, 10, bond=2),
    )
    groups = tnlayers.param_groups(model, 2e-3, base_fan_in=64, weight_decay=0.1)
    listed = [p for g in groups for p in g["params"]]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(listed) == len(trainable) == len({id(p) for p in listed})
    assert {id(p) for p in listed} == {id(p) for p in trainable}
    assert all(g["weight_decay"] == 0.1 for g in groups)
    rates = {r.name: r.lr for r in tnlayers.training.learning_rates(model, 2e-3, base_fan_in=64)}
    assert rates["0.weight"] == pytest.approx(2e-3 * 64 / 27)  # conv fan-in 3 · 3 · 3
    assert rates["2.weight"] == pytest.approx(2e-3 * 64 / 64)
    assert rates["4.weight"] == rates["0.bias"] == 2e-3
    assert rates["3.tensors.core1"] == pytest.approx(2e-3 * 64 / (2 * 4))
    optimizer = torch.optim.Adam(groups)
    model(torch.randn(2, 3, 6, 6)).sum().backward()
    optimizer.step()


def test_parametrised_tensors_get_their_rate():
    class Scaled(nn.Module):
        def forward(self, value):
            return 2 * value

    layer = tnlayers.TNLinear(tnlayers.btt((4, 4), (4, 4), 2))
    parametrize.register_parametrization(layer.tensors, "A", Scaled())
    rates = {r.name: r for r in tnlayers.training.learning_rates(layer, 1e-3)}
    assert "fan-in 4" in rates["tensors.parametrizations.A.original"].reason


def test_bad_arguments_are_named():
    model = nn.Linear(4, 4)
    with pytest.raises(tnlayers.OptionError, match="lr must be a positive number, got 0"):
        tnlayers.param_groups(model, 0)
    with pytest.raises(tnlayers.OptionError, match="base_fan_in must be a positive integer"):
        tnlayers.param_groups(model, 1e-3, base_fan_in=0)
