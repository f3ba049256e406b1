"""compress() on real model shapes: sharing, roots, attention, ties, frozen layers, convolutions."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import tnlayers
from tnlayers import compress


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_state(model: nn.Module, state: dict[str, torch.Tensor]) -> bool:
    now = model.state_dict()
    return now.keys() == state.keys() and all(torch.equal(now[k], v) for k, v in state.items())


def test_a_module_used_twice_under_one_parent_is_replaced_at_both_positions() -> None:
    torch.manual_seed(0)
    shared = nn.Linear(16, 16)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    new, report = compress(model, rank=4)
    assert isinstance(new[0], tnlayers.TNLinear) and new[2] is new[0]
    (layer,) = report.layers
    assert layer.paths == ("0", "2")
    assert report.params_before == 256 and report.params_after == 4 * 32  # counted once
    x = torch.randn(3, 16)
    w = new[0].to_dense()
    expected = torch.relu(x @ w.T + shared.bias) @ w.T + shared.bias
    torch.testing.assert_close(new(x), expected)


def test_a_root_layer_is_replaced_and_returned() -> None:
    torch.manual_seed(1)
    layer = nn.Linear(8, 6).double()
    new, report = compress(layer, rank=6, only_if_smaller=False)
    assert isinstance(new, tnlayers.TNLinear)
    assert report.layers[0].name == "" and report.layers[0].replacement == "TNLinear"
    x = torch.randn(4, 8, dtype=torch.float64)
    torch.testing.assert_close(new(x), layer(x), rtol=0, atol=1e-12)
    assert isinstance(layer, nn.Linear)  # not modified


def test_frozen_layers_mode_and_dtype_are_kept() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 12)).double()
    model[0].weight.requires_grad_(False)
    model[2].bias.requires_grad_(False)
    model[2].eval()
    new, _ = compress(model, rank=3)
    assert all(not p.requires_grad for p in new[0].tensors.values())
    assert new[0].bias.requires_grad
    assert all(p.requires_grad for p in new[2].tensors.values())
    assert not new[2].bias.requires_grad
    assert new[0].training and not new[2].training
    assert all(p.dtype == torch.float64 for p in new.parameters())


def test_tied_weights_stay_tied_and_dense() -> None:
    class TiedLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(50, 16)
            self.hidden = nn.Linear(16, 16)
            self.head = nn.Linear(16, 50, bias=False)
            self.head.weight = self.embed.weight

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.head(torch.tanh(self.hidden(self.embed(tokens))))

    model = TiedLM()
    new, report = compress(model, rank=4)
    assert [r.name for r in report.layers] == ["hidden"]
    (kept,) = report.skipped
    assert kept.name == "head" and "tied to 'embed'" in kept.reason
    assert new.head.weight is new.embed.weight
    assert "head (Linear): its weight is tied" in str(report)


def test_two_linears_sharing_one_weight_keep_the_tie() -> None:
    first = nn.Linear(10, 10)
    second = nn.Linear(10, 10)
    second.weight = first.weight
    new, report = compress(nn.Sequential(first, nn.ReLU(), second), rank=2)
    assert not report.layers and len(report.skipped) == 2
    assert new[0].weight is new[2].weight


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise
        nn.Conv2d(8, 12, 3, stride=2, groups=4),
        nn.Conv1d(6, 10, 3, padding=1),
        nn.Conv1d(6, 12, 5, stride=2, dilation=2, groups=3),
    ],
    ids=["depthwise", "grouped", "conv1d", "conv1d-grouped"],
)
@pytest.mark.parametrize("method", ["low_rank", "mpo", "kronecker"])
def test_grouped_and_1d_convolutions_at_full_size_keep_the_outputs(conv, method) -> None:
    torch.manual_seed(3)
    conv = conv.double()
    settings = {"low_rank": {"rank": 10_000}, "mpo": {"max_bond": 10_000},
                "kronecker": {"terms": 64}}[method]  # fmt: skip
    new, report = compress(conv, method, **settings, only_if_smaller=False)
    assert report.layers[0].weight_error < 1e-10
    shape = (
        (2, conv.in_channels, 9, 9) if isinstance(conv, nn.Conv2d) else (2, conv.in_channels, 11)
    )
    x = torch.randn(*shape, dtype=torch.float64)
    torch.testing.assert_close(new(x), conv(x), rtol=0, atol=1e-10)


def test_a_truncated_grouped_convolution_equals_the_convolution_of_its_kernel() -> None:
    torch.manual_seed(4)
    conv = nn.Conv2d(8, 16, 3, padding=1, groups=4)
    new, _ = compress(conv, rank=2)
    kernel = new.to_dense().reshape(conv.weight.shape)
    x = torch.randn(2, 8, 7, 7)
    expected = nn.functional.conv2d(x, kernel, new.bias, 1, 1, 1, 4)
    torch.testing.assert_close(new(x), expected)


def _transformer() -> nn.Module:
    return nn.Transformer(
        d_model=16, nhead=2, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=32,
        dropout=0.0, batch_first=True, dtype=torch.float64,
    )  # fmt: skip


@pytest.mark.parametrize("training", [True, False])
def test_transformers_compress_at_full_rank_to_the_same_function(training: bool) -> None:
    torch.manual_seed(5)
    model = _transformer().train(training)
    new, report = compress(model, rank=10_000, only_if_smaller=False)
    names = {r.name for r in report.layers}
    for projection in ("q_proj", "k_proj", "v_proj", "out_proj"):
        assert f"encoder.layers.0.self_attn.{projection}" in names
        assert f"decoder.layers.0.multihead_attn.{projection}" in names
    assert "encoder.layers.1.linear1" in names
    assert not any(isinstance(m, nn.Linear) for m in new.modules())
    src, tgt = (
        torch.randn(3, 7, 16, dtype=torch.float64),
        torch.randn(3, 5, 16, dtype=torch.float64),
    )
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[0, 5:] = True
    mask = nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    with torch.no_grad():  # the fused inference path would read .weight: it must stay off
        out = new(src, tgt, tgt_mask=mask, src_key_padding_mask=padding)
        # The dense reference on the ordinary path (the fused one zeroes padded positions).
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            expected = model(src, tgt, tgt_mask=mask, src_key_padding_mask=padding)
        finally:
            torch.backends.mha.set_fastpath_enabled(True)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-8)


def test_truncated_attention_trains() -> None:
    torch.manual_seed(6)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    new, report = compress(layer, rank=4)
    assert isinstance(new.self_attn, tnlayers.UnfusedMultiheadAttention)
    assert report.unfused == ("self_attn",)
    x = torch.randn(2, 5, 16)
    new(x).square().mean().backward()
    assert all(p.grad is not None for p in new.parameters() if p.requires_grad)
    new.eval()
    with torch.no_grad():
        new(x, src_key_padding_mask=torch.zeros(2, 5, dtype=torch.bool))


def test_selection_by_name_reaches_attention_projections_only() -> None:
    model = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
    new, report = compress(model, names=["self_attn.out_proj"], rank=4)
    assert [r.name for r in report.layers] == ["self_attn.out_proj"]
    assert isinstance(new.self_attn.out_proj, tnlayers.TNLinear)
    assert isinstance(new.self_attn.q_proj, nn.Linear)
    assert isinstance(new.linear1, nn.Linear)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rank": 0}, "rank must be a positive integer"),
        ({"rank": -2}, "rank must be a positive integer"),
        ({"rank": 2.5}, "rank must be a positive integer"),
        ({"rel_error": float("nan")}, "rel_error must be a number in"),
        ({"rel_error": 1.5}, "rel_error must be a number in"),
        ({"param_ratio": -0.1}, "param_ratio must be positive"),
        ({"param_ratio": float("nan")}, "param_ratio must be a finite number"),
        ({"total_param_ratio": float("nan")}, "total_param_ratio must be a finite number"),
        ({"total_param_ratio": 0.0}, r"total_param_ratio must be in \(0, 1\]"),
        ({"rank": 2, "param_ratio": 0.5}, "exactly one of"),
        ({"method": "svd", "rank": 2}, "unknown method 'svd'"),
        ({"method": "mpo", "rank": 2}, "does not take rank"),
        ({"method": "mpo", "rel_error": 0.1, "param_ratio": 0.5}, "got param_ratio, rel_error"),
        ({"method": "mpo"}, r"needs max_bond= \(largest bond\)"),
        ({"method": "kronecker", "terms": 2, "param_ratio": 0.5}, "exactly one of"),
        ({"names": ["nothing.*"], "rank": 2}, "'nothing.*' in names= matches no module"),
        ({"names": "0", "rank": 2}, "must be a list of patterns"),
        ({"total_param_ratio": 0.01}, "no allocation meets it"),
        ({"network": tnlayers.low_rank, "rank": 2}, "network= fixes each layer"),
    ],
)
def test_bad_input_raises_and_leaves_the_model_alone(settings, message) -> None:
    torch.manual_seed(7)
    model = nn.Sequential(nn.Embedding(40, 16), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 40))
    state = _state(model)
    with pytest.raises(tnlayers.TNLayersError, match=message):
        compress(model, **settings)
    assert _same_state(model, state)
    assert isinstance(model[1], nn.Linear) and isinstance(model[3], nn.Linear)


def test_only_if_smaller_is_the_default_and_says_why() -> None:
    model = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3))
    new, report = compress(model, rank=10)
    assert isinstance(new[0], nn.Conv2d)
    (kept,) = report.skipped
    assert kept.name == "0" and "would not be smaller than its 144 weights" in kept.reason


def test_inplace_modifies_the_model_itself() -> None:
    model = nn.Sequential(nn.Linear(16, 16))
    same, _ = compress(model, rank=2, inplace=True)
    assert same is model and isinstance(model[0], tnlayers.TNLinear)


def test_lazy_and_parametrized_layers_are_kept_with_the_reason() -> None:
    model = nn.Sequential(nn.LazyLinear(8), nn.Linear(8, 8), nn.Linear(8, 8))
    nn.utils.parametrizations.orthogonal(model[2])
    _, report = compress(model, rank=2)
    reasons = {s.name: s.reason for s in report.skipped}
    assert "lazy module" in reasons["0"] and "parametrized" in reasons["2"]
    assert [r.name for r in report.layers] == ["1"]


def test_compressing_a_deep_copy_does_not_share_parameters() -> None:
    model = nn.Sequential(nn.Linear(16, 16), nn.Linear(16, 4))
    original = copy.deepcopy(model)
    new, _ = compress(model, rank=2)
    with torch.no_grad():
        for p in new.parameters():
            p.add_(1.0)
    assert _same_state(model, original.state_dict())


def test_weight_reads_the_materialized_matrix_in_the_dense_layout() -> None:
    torch.manual_seed(8)
    linear = tnlayers.TNLinear(tnlayers.mpo((4, 4), (2, 3), 2))
    torch.testing.assert_close(linear.weight, linear.to_dense())
    linear.weight.sum().backward()  # differentiable: reaches the network's tensors
    assert all(t.grad is not None for t in linear.tensors.values())
    x = torch.randn(3, 16)
    torch.testing.assert_close(nn.functional.linear(x, linear.weight, linear.bias), linear(x))
    conv = tnlayers.TNConv2d(4, 6, 3, groups=2, network=tnlayers.low_rank(18, 6, 2))
    assert conv.weight.shape == (6, 2, 3, 3)
    image = torch.randn(2, 4, 7, 7)
    expected = nn.functional.conv2d(image, conv.weight, conv.bias, groups=2)
    torch.testing.assert_close(conv(image), expected)
    conv1d = tnlayers.TNConv1d(4, 6, 3, padding=1, network=tnlayers.low_rank(12, 6, 2))
    signal = torch.randn(2, 4, 9)
    expected = nn.functional.conv1d(signal, conv1d.weight, conv1d.bias, padding=1)
    torch.testing.assert_close(conv1d(signal), expected)
    low = tnlayers.compression.LowRankConv2d(nn.Conv2d(4, 6, 3), 2)
    torch.testing.assert_close(low(image), nn.functional.conv2d(image, low.weight, low[1].bias))
    with pytest.raises(KeyError, match="already exists"):
        linear.weight = nn.Parameter(torch.zeros(6, 16))  # not a parameter: no silent rebinding


@pytest.mark.parametrize(
    ("stride", "padding"),
    [(1, 0), (2, 0), (1, 2), (2, 2), (1, "same"), (1, "valid"), (2, "valid")],
)
@pytest.mark.parametrize("groups", [1, 2])
def test_tnconv1d_equals_conv1d_of_its_kernel(stride, padding, groups) -> None:
    torch.manual_seed(9)
    network = tnlayers.tensor_ring(4 // groups * 3, 8, 2)
    layer = tnlayers.TNConv1d(4, 8, 3, stride, padding, groups=groups, network=network,
                              dtype=torch.float64)  # fmt: skip
    x = torch.randn(2, 4, 12, dtype=torch.float64)
    expected = nn.functional.conv1d(x, layer.weight, layer.bias, stride, padding, 1, groups)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)
    with pytest.raises(tnlayers.ShapeError, match=r"expects \(batch, 4 channels, length\)"):
        layer(torch.randn(2, 5, 12, dtype=torch.float64))


def test_a_budget_no_layer_can_meet_raises_with_each_reason() -> None:
    model = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 8))
    state = _state(model)
    with pytest.raises(tnlayers.OptionError, match=r"no layer was compressed.*0: nothing fits"):
        compress(model, param_ratio=0.01)
    with pytest.raises(
        tnlayers.OptionError, match=r"no layer was compressed.*would not be smaller"
    ):
        compress(model, rank=16)
    assert _same_state(model, state)


@pytest.mark.slow
def test_a_compiled_model_runs_its_new_layers_after_compression() -> None:
    torch.manual_seed(10)
    model = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    compiled = torch.compile(model)
    x = torch.randn(3, 16)
    dense = compiled(x)  # a graph of the dense layers exists now
    for inplace in (False, True):
        new, _ = compress(compiled, rank=2, inplace=inplace)
        out = new(x)
        torch.testing.assert_close(out, new._orig_mod(x))  # not the stale dense graph
        assert not torch.allclose(out, dense, atol=1e-4)
