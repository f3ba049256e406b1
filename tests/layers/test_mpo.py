"""MPO-Net (Gao et al. 2020) layers: MPOLinear and MPOConv2d (drop-in arguments, forward equals
the dense map, gradients, initialisation) and the paper's models."""

from __future__ import annotations

import io
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import tnlayers
from tnlayers import MPOConv2d, MPOLinear, tt_svd
from tnlayers.models import FC2, LeNet5

from ..reference import relative_error

F64 = torch.float64


def test_mpo_linear_picks_factorisations_and_counts():
    layer = MPOLinear(784, 256, bond=4)
    assert layer.network.in_dims == (4, 7, 7, 4)
    assert layer.network.out_dims == (4, 4, 4, 4)
    assert layer.num_params == 16 * 4 + 28 * 16 + 28 * 16 + 16 * 4
    custom = MPOLinear(784, 256, bond=(2, 3, 5), in_dims=(7, 4, 4, 7), out_dims=(4, 4, 4, 4))
    assert custom.num_params == 28 * 2 + 2 * 16 * 3 + 3 * 16 * 5 + 5 * 28
    assert MPOLinear(100, 60, bond=3, cores=3).network.in_dims == (4, 5, 5)


def test_mpo_linear_errors_name_the_sizes():
    with pytest.raises(tnlayers.ShapeError, match=r"in_dims \(4, 7, 7\) multiply to 196"):
        MPOLinear(784, 256, bond=2, in_dims=(4, 7, 7), out_dims=(4, 8, 8))
    with pytest.raises(tnlayers.NetworkSpecError, match="4 cores has 3 bonds"):
        MPOLinear(784, 256, bond=(2, 2), in_dims=(4, 7, 7, 4), out_dims=(4, 4, 4, 4))
    with pytest.raises(tnlayers.NetworkSpecError, match="as many input legs"):
        MPOLinear(784, 256, bond=2, in_dims=(28, 28), out_dims=(4, 4, 4, 4))
    with pytest.raises(tnlayers.OptionError, match="unknown init"):
        MPOLinear(16, 16, bond=2, init="xavier")  # type: ignore[arg-type]


@pytest.mark.parametrize("init", ["variance", "paper"])
def test_mpo_linear_forward_equals_dense(init):
    layer = MPOLinear(60, 24, bond=3, cores=3, init=init, dtype=F64)
    x = torch.randn(7, 60, dtype=F64)
    expected = x @ layer.to_dense().T + layer.bias
    for strategy in ("sequential", "materialize"):
        layer.strategy = strategy
        torch.testing.assert_close(layer(x), expected, rtol=1e-10, atol=1e-10)


def test_paper_init_has_the_authors_truncated_glorot_std():
    layer = MPOLinear(784, 256, bond=16, in_dims=(4, 7, 7, 4), out_dims=(4, 4, 4, 4), init="paper")
    core = layer.tensors["core2"].detach()  # (16, 4, 7, 16): fan_in 16·7, fan_out 4·16
    expected = math.sqrt(2.0 / (16 * 7 + 4 * 16))
    assert float(core.std()) == pytest.approx(expected, rel=0.05)
    assert float(core.abs().max()) <= 2 * math.sqrt(1.3) * expected + 1e-6
    assert torch.all(layer.bias == 0)


def test_from_linear_at_full_bond_and_truncated():
    torch.manual_seed(0)
    linear = nn.Linear(84, 10, dtype=F64)
    layer = MPOLinear.from_linear(linear, in_dims=(2, 3, 7, 2), out_dims=(1, 5, 2, 1))
    x = torch.randn(5, 84, dtype=F64)
    torch.testing.assert_close(layer(x), linear(x), rtol=1e-10, atol=1e-10)
    small = MPOLinear.from_linear(linear, max_bond=2, in_dims=(2, 3, 7, 2), out_dims=(1, 5, 2, 1))
    expected = tt_svd(linear.weight, (2, 3, 7, 2), (1, 5, 2, 1), max_bond=2)
    assert relative_error(small.to_dense(), linear.weight.detach()) == pytest.approx(
        expected.error, abs=1e-10
    )
    assert max(small.mpo().bonds) <= 2


def test_layer_canonicalized_and_truncated_keep_bias_and_weight():
    layer = MPOLinear(64, 64, bond=6, cores=3, dtype=F64)
    canon = layer.canonicalized("mixed", 2)
    assert isinstance(canon, MPOLinear)
    torch.testing.assert_close(canon.to_dense(), layer.to_dense(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(canon.bias, layer.bias)
    torch.testing.assert_close(canon.entanglement_entropy(), layer.entanglement_entropy())
    cut = layer.truncated(max_bond=2)
    assert max(cut.mpo().bonds) <= 2
    assert cut.num_params < layer.num_params


def test_mpo_linear_state_dict_round_trip_and_gradcheck():
    layer = MPOLinear(24, 12, bond=3, cores=2, dtype=F64)
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    fresh = MPOLinear(24, 12, bond=3, cores=2, dtype=F64)
    fresh.load_state_dict(torch.load(buffer))
    for (name, a), (_, b) in zip(
        layer.state_dict().items(), fresh.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    x = torch.randn(3, 24, dtype=F64, requires_grad=True)
    params = tuple(layer.parameters())
    assert torch.autograd.gradcheck(
        lambda x, *p: torch.func.functional_call(
            layer, dict(zip([n for n, _ in layer.named_parameters()], p, strict=True)), (x,)
        ),
        (x, *params),
    )


conv_cases = st.tuples(
    st.integers(1, 3),  # in channels
    st.integers(1, 5),  # out channels
    st.integers(1, 4),  # kernel h
    st.integers(1, 4),  # kernel w
    st.integers(1, 3),  # stride
    st.one_of(st.integers(0, 2), st.just("same"), st.just("valid")),
    st.integers(1, 2),  # dilation
    st.booleans(),  # bias
    st.integers(0, 1000),
)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@given(conv_cases)
def test_mpo_conv_equals_conv2d_with_the_materialized_weight(case):
    c_in, c_out, kh, kw, stride, padding, dilation, bias, seed = case
    if padding == "same":
        stride = 1
    torch.manual_seed(seed)
    layer = MPOConv2d(
        c_in, c_out, (kh, kw), stride, padding, dilation, 1, bias, bond=3, cores=2, dtype=F64
    )
    reference = nn.Conv2d(c_in, c_out, (kh, kw), stride, padding, dilation, bias=bias, dtype=F64)
    with torch.no_grad():
        reference.weight.copy_(layer.to_dense().reshape(reference.weight.shape))
        if bias:
            reference.bias.copy_(layer.bias)
    x = torch.randn(2, c_in, 9, 8, dtype=F64)
    expected = reference(x)
    assert layer.output_size((9, 8)) == tuple(expected.shape[2:])
    for strategy in ("sequential", "materialize"):
        layer.strategy = strategy
        torch.testing.assert_close(layer(x), expected, rtol=1e-10, atol=1e-10)


def test_mpo_conv_gradcheck_both_strategies():
    layer = MPOConv2d(2, 3, 3, stride=2, padding=1, bond=2, cores=2, dtype=F64)
    x = torch.randn(2, 2, 5, 5, dtype=F64, requires_grad=True)
    names = [n for n, _ in layer.named_parameters()]
    for strategy in ("sequential", "materialize"):
        layer.strategy = strategy
        assert torch.autograd.gradcheck(
            lambda x, *p: torch.func.functional_call(layer, dict(zip(names, p, strict=True)), (x,)),
            (x, *layer.parameters()),
        )


def test_from_conv_full_bond_and_cost_counts_unfolded_rows():
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 16, 5)
    layer = MPOConv2d.from_conv(conv)
    x = torch.randn(2, 6, 14, 14)
    torch.testing.assert_close(layer(x), conv(x), rtol=1e-4, atol=1e-5)
    report = layer.cost(256, image_size=(14, 14))
    assert report.plan.batch == 256 * 10 * 10
    fresh = MPOConv2d(6, 16, 5, bond=4)
    with pytest.raises(tnlayers.OptionError, match="image_size"):
        fresh.cost(256)
    with pytest.raises(tnlayers.ShapeError, match="6 channels"):
        fresh(torch.randn(2, 3, 14, 14))
    grouped = nn.Conv2d(4, 6, 3, groups=2, dtype=F64)  # grouped kernels decompose too
    layer = MPOConv2d.from_conv(grouped, max_bond=64, dtype=F64)
    x = torch.randn(2, 4, 7, 7, dtype=F64)
    torch.testing.assert_close(layer(x), grouped(x))
    assert layer.strategy == "materialize"
    with pytest.raises(tnlayers.OptionError, match="padding_mode"):
        MPOConv2d.from_conv(nn.Conv2d(4, 4, 3, padding_mode="reflect"))


@pytest.mark.parametrize(
    ("bond", "params"), [(1, 824), (2, 1024), (3, 1336), (4, 1760), (8, 4576), (16, 15584)]
)
def test_fc2_parameter_counts_match_the_paper(bond, params):
    model = FC2(bond)
    assert sum(m.num_params for m in model.modules() if isinstance(m, MPOLinear)) == params
    assert tnlayers.analysis.compression_ratio(model) == pytest.approx(params / 203_264)


def test_lenet5_rho_and_flatten_order():
    model = LeNet5(mpo=True)
    counts = [m.num_params for m in model.modules() if isinstance(m, MPOLinear)]
    assert counts == [1792, 944, 124]
    assert tnlayers.analysis.compression_ratio(model) == pytest.approx(2860 / 58920)
    assert round(tnlayers.analysis.compression_ratio(model), 2) == 0.05
    dense = LeNet5()
    x = torch.randn(3, 1, 28, 28)
    maps = dense.features(x)
    nhwc = maps.permute(0, 2, 3, 1).reshape(3, -1)
    torch.testing.assert_close(dense(x), dense.classifier(nhwc))
    assert model(x).shape == (3, 10)
    assert "ρ (MPO-Net, eq. 9" in tnlayers.summary(model, 8, input_size=(1, 28, 28))


def test_compression_ratio_needs_a_tn_layer():
    with pytest.raises(ValueError, match="no tensor-network layer"):
        tnlayers.analysis.compression_ratio(FC2())


def test_plot_entanglement_writes_a_figure(tmp_path):
    path = tmp_path / "entropy.png"
    fig = tnlayers.analysis.plot_entanglement(LeNet5(mpo=True), path)
    assert path.stat().st_size > 0
    assert len(fig.axes[0].get_lines()) == 6  # three layers, each with its ln D bound
    with pytest.raises(ValueError, match="no MPO layer"):
        tnlayers.analysis.plot_entanglement(FC2())


def test_mpo_conv_moves_dtype_like_nn_conv2d():
    conv = MPOConv2d(2, 4, 3, bond=2, padding=1)
    x = torch.randn(2, 2, 6, 6)
    y32 = conv(x)
    conv.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in conv.parameters())
    torch.testing.assert_close(conv(x.double()).float(), y32, rtol=1e-5, atol=1e-5)


def test_convs_sharing_a_network_keep_separate_timings_and_pickle():
    a = MPOConv2d(3, 8, 3, bond=2, cores=2, padding=1)
    b = MPOConv2d(3, 8, 3, bond=2, cores=2, stride=2)
    assert a.network == b.network
    assert a._config != b._config
    buffer = io.BytesIO()
    torch.save(a, buffer)
    buffer.seek(0)
    again = torch.load(buffer, weights_only=False)
    assert again._config == a._config
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(again(x), a(x))


PAPER_MPOS = {
    "VGG": (
        [
            ((2, 8, 8, 8, 2), (2, 8, 8, 8, 2), 4, 3104),
            ((2, 8, 8, 8, 2), (2, 8, 8, 8, 2), 4, 3104),
            ((4, 4, 4, 4, 2), (4, 4, 8, 8, 4), 4, 1376),
            ((4, 4, 8, 8, 4), (4, 4, 8, 8, 4), 4, 2432),
            ((4, 4, 8, 8, 4), (1, 10, 1, 1, 1), 4, 928),
        ],
        0.00040,
    ),
    "WideResNet FC": ([((4, 4, 4, 4), (1, 5, 2, 1), 3, 276)], 0.108),
    "DenseNet-40 (16,12,12)": ([((4, 4, 7, 4), (1, 5, 2, 1), 4, 576)], 0.129),
    "DenseNet-40 (16,12,24)": ([((4, 5, 11, 4), (1, 5, 2, 1), 4, 784)], 0.089),
    "DenseNet-100 (24,32,12)": ([((4, 7, 7, 6), (1, 5, 2, 1), 4, 824)], 0.070),
    "DenseNet-100 (96,32,24)": ([((5, 8, 12, 5), (1, 5, 2, 1), 4, 1064)], 0.044),
}


@pytest.mark.parametrize("name", list(PAPER_MPOS))
def test_every_mpo_of_the_paper_has_its_parameter_count_and_rho(name):
    layers, rho = PAPER_MPOS[name]
    model = nn.Sequential(
        *(
            MPOLinear(math.prod(i), math.prod(o), bond=d, in_dims=i, out_dims=o)
            for i, o, d, _ in layers
        )
    )
    assert [m.num_params for m in model] == [count for *_, count in layers]
    assert round(tnlayers.analysis.compression_ratio(model), len(str(rho)) - 2) == rho


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((3, 8, 3, 1, 1), {}),
        ((3, 8, 3, 2, 0, 1, 1, False), {}),
        ((3, 8, (3, 2)), {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 2)}),
        ((3, 8, 5), {"padding": "same", "bias": False}),
        ((3, 8, 3, 1, 1, 1, 1, True, "zeros"), {}),
    ],
)
def test_mpo_conv_is_a_drop_in_for_conv2d_positionally_and_by_keyword(args, kwargs):
    # The docs' claim: nn.Conv2d's arguments mean the same in the same places; the MPO's own
    # arguments are keyword-only.
    torch.manual_seed(0)
    reference = nn.Conv2d(*args, **kwargs, dtype=F64)
    layer = MPOConv2d(*args, **kwargs, bond=64, dtype=F64)
    with torch.no_grad():
        reference.weight.copy_(layer.to_dense().reshape(reference.weight.shape))
        if reference.bias is not None:
            reference.bias.copy_(layer.bias)
    assert (layer.bias is None) == (reference.bias is None)
    x = torch.randn(2, 3, 9, 8, dtype=F64)
    torch.testing.assert_close(layer(x), reference(x))
    grouped = MPOConv2d(4, 8, 3, 1, 0, 1, 2, bond=2)  # groups, the 7th positional argument
    assert grouped.groups == 2 and grouped.in_features == 2 * 3 * 3
    with pytest.raises(TypeError):
        MPOConv2d(3, 8, 3, 1, 1, 1, 1, True, "zeros", 4)  # bond only by keyword


def test_mpo_linear_reads_nn_linear_positional_arguments():
    layer = MPOLinear(16, 12, False, bond=2)
    assert layer.bias is None and nn.Linear(16, 12, False).bias is None
    with pytest.raises(TypeError):
        MPOLinear(16, 12, 2)  # a bond given in the place of nn.Linear's bias
