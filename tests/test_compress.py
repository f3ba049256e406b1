"""Model surgery: compress a trained model's Linear and Conv2d layers (issue 6, first part)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import tnlayers
from tnlayers import LowRankConv2d, compress


class Nested(nn.Module):
    """Convolutions, nested containers and one Linear shared by two parents."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        shared = nn.Linear(12, 12)
        self.head = nn.ModuleDict(
            {
                "fc": nn.Linear(6 * 4 * 4, 12),
                "a": nn.Sequential(shared, nn.Tanh()),
                "b": nn.Sequential(shared, nn.Linear(12, 5)),
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.head["fc"](self.features(x).flatten(1)))
        return self.head["b"](self.head["a"](h))


def _sequential() -> nn.Sequential:
    return nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 7))


@pytest.mark.parametrize(
    ("method", "settings"),
    [("low_rank", {"rank": 10_000}), ("mpo", {"bond": 10_000})],
)
@pytest.mark.parametrize("build", [_sequential, Nested], ids=["sequential", "nested"])
def test_full_rank_compression_keeps_the_outputs(method: str, settings: dict, build) -> None:
    torch.manual_seed(0)
    model = build()
    x = torch.randn(4, 20) if build is _sequential else torch.randn(4, 2, 8, 8)
    new, report = compress(model, method, **settings)  # type: ignore[arg-type]
    assert torch.allclose(new(x), model(x), atol=1e-5)
    assert all(r.weight_error < 1e-5 for r in report.layers)
    assert not any(isinstance(m, nn.Linear | nn.Conv2d) for m in _top_layers(new))


def _top_layers(model: nn.Module) -> list[nn.Module]:
    """Linear/Conv2d layers left, not counting the two convolutions inside a LowRankConv2d."""
    inside = {id(c) for m in model.modules() if isinstance(m, LowRankConv2d) for c in m}
    return [
        m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d) and id(m) not in inside
    ]


def test_shared_module_is_replaced_once_and_original_is_untouched() -> None:
    torch.manual_seed(1)
    model = Nested()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    new, report = compress(model, rank=3)
    assert new.head["a"][0] is new.head["b"][0]
    assert isinstance(new.head["a"][0], tnlayers.TNLinear)
    assert [r.name for r in report.layers] == ["features.0", "head.fc", "head.a.0", "head.b.1"]
    assert isinstance(model.head["a"][0], nn.Linear)  # the original is left alone
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    same, _ = compress(model, rank=3, inplace=True)
    assert same is model and isinstance(model.head["fc"], tnlayers.TNLinear)


def test_reported_error_matches_direct_computation_and_eckart_young() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    new, report = compress(model, rank=4)
    pairs = [(model[0], new[0]), (model[2], new[2])]
    for layer, (old, replaced) in zip(report.layers, pairs, strict=True):
        w = old.weight.detach()
        approx = replaced.to_dense().detach().reshape(w.shape)
        direct = (torch.linalg.norm(approx - w) / torch.linalg.norm(w)).item()
        assert layer.weight_error == pytest.approx(direct, rel=1e-5)
        s = torch.linalg.svdvals(w.reshape(w.shape[0], -1).double())
        eckart_young = (s[4:].square().sum().sqrt() / s.square().sum().sqrt()).item()
        assert layer.weight_error == pytest.approx(eckart_young, rel=1e-4)
    assert report.layers[0].params_after == 4 * (3 * 9 + 8)  # r(C_in·k² + C_out)


def test_error_and_parameter_budgets_pick_the_rank() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(40, 30))
    s = torch.linalg.svdvals(model[0].weight.detach().double())
    _, report = compress(model, rel_error=0.5)
    (layer,) = report.layers
    rank = int(layer.setting.split()[1])
    assert layer.weight_error <= 0.5 + 1e-6
    tail = lambda r: (s[r:].square().sum() / s.square().sum()).sqrt().item()  # noqa: E731
    assert tail(rank - 1) > 0.5  # the smallest such rank
    _, report = compress(model, param_ratio=0.3)
    (layer,) = report.layers
    rank = int(layer.setting.split()[1])
    assert layer.params_after == rank * 70 <= 0.3 * 1200 < (rank + 1) * 70


def test_flops_before_and_after() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 36, 8))
    _, report = compress(model, rank=2, batch=10, input_size=(1, 6, 6))
    conv, fc = report.layers
    assert conv.flops_before == 2 * 10 * 36 * 9 * 4
    assert conv.flops_after == 2 * 10 * 36 * (9 * 2 + 2 * 4)
    assert fc.flops_before == 2 * 10 * 144 * 8
    assert fc.flops_after is not None and fc.flops_after > 0
    _, no_size = compress(model, rank=2)
    assert no_size.layers[0].flops_before is None  # a convolution needs input_size


def test_selection_by_name_type_and_size() -> None:
    model = Nested()
    _, report = compress(model, names=["head.*"], types=(nn.Linear,), min_params=100, rank=2)
    assert [r.name for r in report.layers] == ["head.fc", "head.a.0"]
    new, _ = compress(model, "kronecker", types=(nn.Linear,), names=["head.fc"], terms=2)
    assert isinstance(new.head["fc"], tnlayers.KronLinear)


def test_clear_errors() -> None:
    model = _sequential()
    with pytest.raises(tnlayers.OptionError, match=r"no layer matches.*0 \(Linear, 600 weights\)"):
        compress(model, names=["conv*"], rank=2)
    with pytest.raises(tnlayers.OptionError, match="exactly one of"):
        compress(model)
    with pytest.raises(tnlayers.OptionError, match="bond="):
        compress(model, "mpo")
    with pytest.raises(tnlayers.OptionError, match="Linear layers only"):
        compress(nn.Sequential(nn.Conv2d(1, 2, 3)), "kronecker")
    with pytest.raises(tnlayers.OptionError, match="unknown method"):
        compress(model, "tucker", rank=2)  # type: ignore[arg-type]
    assert math.isfinite(compress(model, rank=1)[1].ratio)
