"""Checkpoints that reload (to_json → restore), any topology, model-level budgets, auto."""

from __future__ import annotations

import io
import json
import math

import pytest
import torch
from torch import nn

import tnlayers
from tnlayers import compress, restore


class Net(nn.Module):
    """A convolution, attention, a shared Linear, a tied head and a batch norm."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(30, 16)
        self.conv = nn.Conv1d(16, 16, 3, padding=1)
        self.norm = nn.BatchNorm1d(16)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        shared = nn.Linear(16, 16)
        self.mlp = nn.Sequential(shared, nn.GELU(), shared, nn.Linear(16, 24), nn.GELU(),
                                 nn.Linear(24, 16))  # fmt: skip
        self.head = nn.Linear(16, 30, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens)
        h = h + self.norm(self.conv(h.transpose(1, 2))).transpose(1, 2)
        h = h + self.attn(h, h, h, need_weights=False)[0]
        return self.head(h + self.mlp(h))


def _round_trip(new: nn.Module, report: tnlayers.CompressionReport, build) -> nn.Module:
    buffer = io.BytesIO()
    torch.save({"spec": report.to_json(), "state": new.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    skeleton = restore(build(), saved["spec"])
    skeleton.load_state_dict(saved["state"], strict=True)
    return skeleton


@pytest.mark.parametrize(
    ("method", "settings"),
    [
        ("low_rank", {"rank": 3}),
        ("mpo", {"max_bond": 2}),
        ("kronecker", {"terms": 2}),
        ("auto", {"param_ratio": 0.4}),
        ("low_rank", {"total_param_ratio": 0.8}),
        ("network", {"network": lambda i, o: tnlayers.tensor_ring(i, o, 2, cores=2)}),
    ],
    ids=["low_rank", "mpo", "kronecker", "auto", "budget", "network"],
)
def test_a_compressed_checkpoint_restores_exactly_without_decomposing(
    method, settings, monkeypatch
):
    torch.manual_seed(0)

    def build() -> Net:
        return Net().eval()

    kwargs = dict(settings)
    new, report = compress(build(), **({} if method == "network" else {"method": method}), **kwargs)
    assert report.layers and report.unfused == ("attn",)
    tokens = torch.randint(0, 30, (2, 7))
    # restore must not decompose: make every decomposition fail while it runs.
    from tnlayers._surgery import decompose

    def refuse(*args, **kw):
        raise AssertionError("restore ran a decomposition")

    for name in ("svd_ladder", "mpo_candidate", "kronecker_candidate", "fitted", "ladder"):
        monkeypatch.setattr(decompose, name, refuse)
    monkeypatch.setattr(torch.linalg, "svd", refuse)
    again = _round_trip(new, report, build)
    with torch.no_grad():
        torch.testing.assert_close(again(tokens), new(tokens), rtol=0, atol=0)
    assert [type(m).__name__ for m in again.modules()] == [type(m).__name__ for m in new.modules()]
    assert again.mlp[0] is again.mlp[2] and again.head.weight is again.embed.weight


def test_the_spec_is_plain_json_and_a_dict_works_too() -> None:
    model = nn.Sequential(nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 4))
    new, report = compress(model, "mpo", max_bond=2)
    spec = json.loads(report.to_json())
    assert spec["format"] == "tnlayers.compress" and spec["version"] == 1
    assert [e["paths"] for e in spec["layers"]] == [["0"], ["2"]]
    assert spec["layers"][0]["replacement"] == "MPOLinear"
    skeleton = restore(nn.Sequential(nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 4)), spec)
    skeleton.load_state_dict(new.state_dict())
    x = torch.randn(3, 12)
    torch.testing.assert_close(skeleton(x), new(x), rtol=0, atol=0)


def test_restore_names_what_does_not_fit() -> None:
    _, report = compress(nn.Sequential(nn.Linear(12, 12)), rank=2)
    with pytest.raises(tnlayers.OptionError, match="not a compression spec"):
        restore(nn.Sequential(nn.Linear(12, 12)), {"layers": []})
    with pytest.raises(tnlayers.ShapeError, match=r"a 12 × 12 weight, but the model's is 12 × 10"):
        restore(nn.Sequential(nn.Linear(10, 12)), report.to_json())
    with pytest.raises(tnlayers.ShapeError, match="a Linear, but the model has a ReLU there"):
        restore(nn.Sequential(nn.ReLU()), report.to_json())
    with pytest.raises(tnlayers.OptionError, match="has no such module"):
        restore(nn.Sequential(), report.to_json())


def _spectral_model() -> nn.Sequential:
    """Two layers whose singular values decay at very different rates."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(32, 32, bias=False), nn.Linear(32, 32, bias=False))
    with torch.no_grad():
        for layer, decay in zip(model, (0.5, 0.95), strict=True):
            u, _ = torch.linalg.qr(torch.randn(32, 32))
            v, _ = torch.linalg.qr(torch.randn(32, 32))
            layer.weight.copy_(u @ torch.diag(decay ** torch.arange(32.0)) @ v.T)
    return model


def test_a_total_budget_is_met_and_goes_where_it_costs_the_least_error() -> None:
    model = _spectral_model()
    new, report = compress(model, total_param_ratio=0.3)
    assert report.budget is not None
    assert report.budget.achieved_ratio <= 0.3
    total = sum(p.numel() for p in new.parameters())
    assert total == report.budget.model_params_after <= 0.3 * 2048
    fast, slow = (int(r.setting.split()[1]) for r in report.layers)
    assert fast < slow  # the slowly decaying spectrum needs (and gets) the larger rank
    split = sum(r.weight_error**2 for r in report.layers)
    # Every other split of the same budget into ranks does no better.
    budget_rank = (0.3 * 2048) // 64
    for a in range(1, int(budget_rank)):
        b = int(budget_rank) - a
        errors = []
        for layer, rank in zip(model, (a, b), strict=True):
            s = torch.linalg.svdvals(layer.weight.detach().double())
            errors.append((s[rank:].square().sum() / s.square().sum()).item())
        assert split <= sum(errors) + 1e-6  # the report's errors are float32
    assert "whole model: 2,048 →" in str(report) and "target 0.3" in str(report)


@pytest.mark.parametrize("method", ["mpo", "kronecker", "auto"])
def test_total_budgets_hold_for_every_method(method) -> None:
    model = _spectral_model()
    new, report = compress(model, method, total_param_ratio=0.4)
    assert report.budget is not None and report.budget.achieved_ratio <= 0.4
    assert sum(p.numel() for p in new.parameters()) <= 0.4 * 2048


def test_auto_picks_the_structure_that_fits_exactly_and_says_why() -> None:
    torch.manual_seed(2)
    kron = torch.kron(torch.randn(8, 8), torch.randn(8, 8))  # a 64 × 64 Kronecker product
    rank3 = torch.randn(64, 3) @ torch.randn(3, 64)
    model = nn.Sequential(nn.Linear(64, 64, bias=False), nn.Linear(64, 64, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(kron)
        model[1].weight.copy_(rank3)
    _, report = compress(model, "auto", param_ratio=0.1)
    first, second = report.layers
    # A Kronecker product of two 8 × 8 factors is also a bond-1 MPO over the same split.
    assert first.structure in ("kronecker", "mpo") and first.weight_error < 1e-5
    assert second.structure == "low_rank" and second.weight_error < 1e-5
    for layer in (first, second):
        assert layer.choice.startswith(layer.structure)
        listed = layer.choice.split(": ", 1)[1].split(", ")
        errors = [float(item.split()[1]) for item in listed]
        assert errors == sorted(errors) and len(listed) >= 4  # every structure, best first
    assert "why each structure" in str(report)


def test_a_network_builder_recovers_a_weight_of_that_structure() -> None:
    torch.manual_seed(3)
    source = tnlayers.TNLinear(tnlayers.btt(64, 48, 2), bias=True)
    model = nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))
    with torch.no_grad():
        model[0].weight.copy_(source.to_dense())
    builders = {"0": lambda i, o: tnlayers.btt(i, o, 2)}
    _, report = compress(model, network=builders)
    (layer,) = report.layers
    assert layer.name == "0" and layer.weight_error < 1e-6
    assert [s.name for s in report.skipped] == ["2"]
    assert "no pattern of network=" in report.skipped[0].reason
    with pytest.raises(tnlayers.OptionError, match=r"must return a tnlayers\.Network"):
        compress(model, network=lambda i, o: None)


def test_recalibrate_batchnorm_matches_the_batch_statistics() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 36, 4)).eval()  # fmt: skip
    new, _ = compress(model, rank=2)
    batches = [torch.randn(5, 3, 8, 8) for _ in range(3)]
    seen = tnlayers.recalibrate_batchnorm(new, batches)
    assert seen == 3 and not new.training and not new[1].training
    features = torch.cat([new[0](b) for b in batches]).detach()
    mean = features.mean(dim=(0, 2, 3))
    torch.testing.assert_close(new[1].running_mean, mean, rtol=1e-5, atol=1e-6)
    per_batch = torch.stack([new[0](b).detach().var(dim=(0, 2, 3)) for b in batches])
    # update_bn's cumulative average of each batch's unbiased variance
    torch.testing.assert_close(new[1].running_var, per_batch.mean(0), rtol=1e-4, atol=1e-6)
    assert new[1].momentum == 0.1
    with pytest.raises(tnlayers.OptionError, match="no batch norm"):
        tnlayers.recalibrate_batchnorm(nn.Linear(2, 2), batches)
    with pytest.raises(tnlayers.OptionError, match="empty"):
        tnlayers.recalibrate_batchnorm(new, [])
    assert math.isfinite(new[1].running_var.sum().item())
