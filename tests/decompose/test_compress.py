"""Model surgery: compress a trained model's Linear and Conv2d layers (issue 6, first part)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

import tnlayers
from tnlayers import compress
from tnlayers.compression import LowRankConv2d


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
    [("low_rank", {"rank": 10_000}), ("mpo", {"max_bond": 10_000})],
)
@pytest.mark.parametrize("build", [_sequential, Nested], ids=["sequential", "nested"])
def test_full_rank_compression_keeps_the_outputs(method: str, settings: dict, build) -> None:
    torch.manual_seed(0)
    model = build()
    x = torch.randn(4, 20) if build is _sequential else torch.randn(4, 2, 8, 8)
    new, report = compress(model, method, **settings, only_if_smaller=False)  # type: ignore[arg-type]
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
    with pytest.raises(
        tnlayers.OptionError, match=r"'conv\*' in names= matches no module.*0, 1, 2"
    ):
        compress(model, names=["conv*"], rank=2)
    with pytest.raises(tnlayers.OptionError, match=r"no layer matches.*0 \(Linear, 600 weights\)"):
        compress(model, names=["1"], rank=2)  # the ReLU
    with pytest.raises(tnlayers.OptionError, match="exactly one of"):
        compress(model)
    with pytest.raises(tnlayers.OptionError, match="bond="):
        compress(model, "mpo")
    with pytest.raises(tnlayers.OptionError, match="unknown method"):
        compress(model, "tucker", rank=2)  # type: ignore[arg-type]
    assert math.isfinite(compress(model, rank=1)[1].compression_ratio)


# ---------------------------------------------------------------------- QIANets steps
def _pruned(module: nn.Module) -> torch.Tensor:
    return module.weight_mask == 0


@pytest.mark.parametrize("stages", [1, 5])
@pytest.mark.parametrize("alpha", [0.1417, 0.3779, 0.4805])
def test_pruning_prunes_alpha_of_the_weights(stages: int, alpha: float) -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 8, 3))
    report = tnlayers.compression.qianets_prune(model, alpha, stages=stages, p_entangle=0.0)
    for conv in (model[0], model[2]):
        assert abs(_pruned(conv).float().mean().item() - alpha) < 0.01
        assert torch.nn.utils.prune.is_pruned(conv)
    assert report.pruned_fraction == pytest.approx(alpha, abs=0.01)


def test_one_stage_without_entanglement_is_magnitude_pruning() -> None:
    torch.manual_seed(5)
    layer = nn.Linear(50, 40)
    weight = layer.weight.detach().clone()
    tnlayers.compression.qianets_prune(layer, 0.3, stages=1, p_entangle=0.0, types=(nn.Linear,))
    k = round(0.3 * weight.numel())
    threshold = weight.abs().flatten().kthvalue(k).values
    assert torch.equal(_pruned(layer), weight.abs() <= threshold)


def test_entanglement_prunes_the_expected_extra_fraction() -> None:
    torch.manual_seed(6)
    layer = nn.Linear(300, 300)
    gen = torch.Generator().manual_seed(0)
    tnlayers.compression.qianets_prune(
        layer, 0.3, stages=1, p_entangle=0.5, types=(nn.Linear,), generator=gen
    )
    expected = 1 - (1 - 0.3) * (1 - 0.3 * 0.5) ** 2  # QIANets' pruning: ≈ 0.494
    assert _pruned(layer).float().mean().item() == pytest.approx(expected, abs=0.01)


def test_masks_survive_optimizer_steps_and_prune_remove() -> None:
    torch.manual_seed(7)
    model = nn.Sequential(nn.Conv2d(1, 6, 3), nn.Flatten(), nn.Linear(6 * 6 * 6, 3))
    tnlayers.compression.qianets_prune(model, 0.5, stages=3)
    mask = model[0].weight_mask.clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(5):
        optimizer.zero_grad()
        model(torch.randn(4, 1, 8, 8)).square().sum().backward()
        optimizer.step()
    assert torch.equal(model[0].weight_mask, mask)
    assert (model[0].weight[mask == 0] == 0).all()
    torch.nn.utils.prune.remove(model[0], "weight")
    assert (model[0].weight[mask == 0] == 0).all()
    assert not isinstance(model[2], nn.Conv2d)  # Linear layers untouched by default
    assert not torch.nn.utils.prune.is_pruned(model[2])


def test_pruning_errors() -> None:
    with pytest.raises(tnlayers.OptionError, match="no layer to prune"):
        tnlayers.compression.qianets_prune(nn.Sequential(nn.Linear(3, 3)), 0.5)
    with pytest.raises(tnlayers.OptionError, match="alpha"):
        tnlayers.compression.qianets_prune(nn.Conv2d(1, 1, 3), 1.5)


@pytest.mark.parametrize("shape", [(12, 30), (8, 3, 3, 3)])
def test_annealing_factorisation_decreases_and_respects_the_svd_optimum(shape) -> None:
    torch.manual_seed(8)
    matrix = torch.randn(*shape)
    flat = matrix.reshape(shape[0], -1).double()
    rank = 4
    optimum = torch.linalg.svdvals(flat)[rank:].square().sum().item()
    result = tnlayers.compression.anneal_factorize(
        matrix, rank, generator=torch.Generator().manual_seed(0)
    )
    losses = result.losses
    assert all(b <= a for a, b in itertools.pairwise(losses))
    assert losses[-1] < losses[0]
    assert losses[-1] >= optimum * (1 - 1e-9)
    product = (result.left @ result.right).double()
    direct = ((flat - product).square().sum() / flat.square().sum()).sqrt().item()
    assert result.relative_error == pytest.approx(direct, rel=1e-4)
    warm = tnlayers.compression.anneal_factorize(matrix, rank, init="svd")
    assert warm.losses[-1] == pytest.approx(optimum, rel=1e-6)


# ---------------------------------------------------------------------- latency and fine-tuning
def test_latency_report_counts_weights_and_non_zeros() -> None:
    torch.manual_seed(9)
    dense = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    pruned = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    pruned.load_state_dict(dense.state_dict())
    tnlayers.compression.qianets_prune(pruned, 0.5, p_entangle=0.0)
    factored, _ = compress(dense, rank=1)
    report = tnlayers.analysis.measure_latency(
        {"dense": dense, "pruned": pruned, "low rank": factored},
        torch.randn(5, 1, 8, 8),
        batch_sizes=(1, 8),
        threads=1,
        warmup=1,
        repeats=3,
    )
    total = 36 + 144 * 3
    assert report.weights["dense"] == report.weights["pruned"] == total
    assert report.nonzero["pruned"] == total - 18  # half of the 36 conv weights
    assert report.weights["low rank"] == (9 + 4) + (144 + 3)
    assert set(report.seconds["dense"]) == {1, 8}
    assert all(t > 0 for times in report.seconds.values() for t in times.values())
    assert "not the time" in str(report)
    assert dense.training and torch.get_num_threads() >= 1  # modes and threads restored


def test_fine_tune_improves_accuracy_and_keeps_masks() -> None:
    torch.manual_seed(10)
    x = torch.randn(200, 10)
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
    tnlayers.compression.qianets_prune(model, 0.5, types=(nn.Linear,), p_entangle=0.0)
    mask = model[0].weight_mask.clone()
    result = tnlayers.training.fine_tune(
        model, x, y, x, y, epochs=20, lr=0.01, batch=50, progress=False
    )
    assert result.accuracy_after > result.accuracy_before
    assert result.accuracy_after > 90
    assert len(result.losses) == 20 and result.losses[-1] < result.losses[0]
    assert (model[0].weight[mask == 0] == 0).all()


def test_only_if_smaller_and_factor_deployment() -> None:
    torch.manual_seed(11)
    model = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3))
    new, report = compress(model, rank=10, only_if_smaller=True)
    assert isinstance(new[0], nn.Conv2d)  # rank 9 of a 16 × 9 kernel saves nothing: kept
    assert [r.name for r in report.layers] == ["2"]
    w = model[2].weight.detach().reshape(16, -1)
    fit = tnlayers.compression.anneal_factorize(w, 4, init="svd")
    deployed = LowRankConv2d(model[2], 4, (fit.left, fit.right))
    assert torch.allclose(deployed.to_dense().reshape(16, -1), fit.left @ fit.right, atol=1e-6)
    x = torch.randn(2, 16, 6, 6)
    expected = nn.functional.conv2d(x, (fit.left @ fit.right).reshape(16, 16, 3, 3), model[2].bias)
    assert torch.allclose(deployed(x), expected, atol=1e-5)


def test_small_cnn_models_compress_at_full_rank() -> None:
    torch.manual_seed(12)
    x = torch.randn(3, 1, 28, 28)
    for model in (tnlayers.models.SmallResNet(), tnlayers.models.SmallDenseNet()):
        model.eval()  # batch norm with running statistics: a deterministic map
        assert model(x).shape == (3, 10)
        new, report = compress(model, rank=10_000, types=(nn.Conv2d,), only_if_smaller=False)
        assert torch.allclose(new(x), model(x), atol=1e-4)
        assert len(report.layers) == sum(isinstance(m, nn.Conv2d) for m in model.modules())


def test_parameter_budgets_for_mpo_and_kronecker() -> None:
    torch.manual_seed(13)
    model = nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 36))
    for method in ("mpo", "kronecker"):
        new, report = compress(model, method, param_ratio=0.25, types=(nn.Linear,))
        for layer in report.layers:
            assert layer.params_after <= 0.25 * layer.params_before
        looser, _ = compress(model, method, param_ratio=0.6, types=(nn.Linear,))
        x = torch.randn(5, 64)
        # A larger budget fits the weights at least as well.
        assert (looser(x) - model(x)).norm() <= (new(x) - model(x)).norm() + 1e-5
    _, report = compress(model, "mpo", param_ratio=0.25, names=["0"])
    (chosen,) = report.layers
    cap = max(int(b) for b in chosen.setting.split()[1].split(","))
    _, over = compress(model, "mpo", max_bond=cap + 1, names=["0"])
    # The cap is the largest within budget: one more is over it, or cuts nothing more.
    grown = over.layers[0].params_after
    assert grown > 0.25 * chosen.params_before or grown == chosen.params_after


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(3, 8, 3, padding="same"),
        nn.Conv2d(3, 8, 3, padding="valid"),
        nn.Conv2d(3, 8, 3, stride=2, padding=1, dilation=2),
    ],
)
def test_low_rank_conv_cost_counts_the_output_positions(conv):
    layer = LowRankConv2d(conv, 2)
    y = layer(torch.randn(2, 3, 9, 9))
    report = layer.cost(2)  # the last input's image size
    assert report.batch == 2 * y.shape[2] * y.shape[3]
    assert report.chosen.flops == 2 * report.batch * 2 * (3 * 9 + 8)
