"""TNConv2d: a convolution whose kernel is any network equals F.conv2d with the materialized
kernel, over strides, paddings, dilations, groups and both strategies."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F  # noqa: N812

import tnlayers
from tnlayers import TNConv2d

F64 = torch.float64

NETWORKS = {
    "mpo": lambda fan_in, out: tnlayers.mpo(fan_in, out, 2, cores=2),
    "tensor_ring": lambda fan_in, out: tnlayers.tensor_ring(fan_in, out, 2, cores=2),
    "cp": lambda fan_in, out: tnlayers.cp(fan_in, out, 3, parts=2),
    "tucker": lambda fan_in, out: tnlayers.tucker(fan_in, out, 2, parts=2),
    "tree": lambda fan_in, out: tnlayers.tree(fan_in, out, 2, leaves=2),
    "low_rank": lambda fan_in, out: tnlayers.low_rank(fan_in, out, 3),
}


@settings(max_examples=25)
@given(
    network=st.sampled_from(sorted(NETWORKS)),
    groups=st.sampled_from([1, 2]),
    kernel=st.sampled_from([1, 2, 3, (3, 2)]),
    stride=st.sampled_from([1, 2, (2, 1)]),
    padding=st.sampled_from([0, 1, (1, 2), "valid"]),
    dilation=st.sampled_from([1, 2]),
    strategy=st.sampled_from(["sequential", "materialize"]),
    bias=st.booleans(),
)
def test_equals_conv2d_with_the_materialized_kernel(
    network, groups, kernel, stride, padding, dilation, strategy, bias
):
    if groups > 1 and strategy == "sequential":
        strategy = "materialize"  # grouped kernels run materialized (tested below)
    c_in, c_out = 4, 6
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    net = NETWORKS[network](c_in // groups * kh * kw, c_out)
    conv = TNConv2d(
        c_in, c_out, kernel, stride, padding, dilation, groups, bias,
        network=net, strategy=strategy, dtype=F64,
    )  # fmt: skip
    x = torch.randn(2, c_in, 9, 8, dtype=F64)
    kernel_weight = conv.to_dense().reshape(c_out, c_in // groups, kh, kw)
    expected = F.conv2d(x, kernel_weight, conv.bias, stride, padding, dilation, groups)
    torch.testing.assert_close(conv(x), expected)
    conv.eval()
    with torch.no_grad():
        torch.testing.assert_close(conv(x), expected)


def test_same_padding_gradients_and_cost():
    net = tnlayers.tensor_ring((3, 3, 2), (2, 2, 2), 2)  # 2 channels · 3 · 3 → 8
    conv = TNConv2d(2, 8, 3, padding="same", network=net, strategy="sequential", dtype=F64)
    x = torch.randn(2, 2, 6, 6, dtype=F64, requires_grad=True)
    assert conv(x).shape == (2, 8, 6, 6)
    params = list(conv.parameters())

    def run(x, *values):
        state = dict(zip([n for n, _ in conv.named_parameters()], values, strict=True))
        return torch.func.functional_call(conv, state, (x,))

    assert torch.autograd.gradcheck(run, (x, *params))
    report = conv.cost(4)  # the last input's image size: 4 images of 6 × 6 positions
    assert report.batch == 4 * 36 and report.strategy == "sequential"


def test_errors_name_the_sizes():
    with pytest.raises(tnlayers.ShapeError, match=r"maps 12 → 6 .* kernel is 6 × 18"):
        TNConv2d(2, 6, 3, network=tnlayers.low_rank(12, 6, 2))
    with pytest.raises(tnlayers.OptionError, match="groups=3 must divide in_channels=4"):
        TNConv2d(4, 6, 3, groups=3, network=tnlayers.low_rank(12, 6, 2))
    with pytest.raises(tnlayers.OptionError, match="strategy='sequential' is available for"):
        TNConv2d(4, 6, 3, groups=2, network=tnlayers.low_rank(18, 6, 2), strategy="sequential")
    with pytest.raises(tnlayers.ArgumentTypeError, match=r"needs network=a tnlayers\.Network"):
        TNConv2d(4, 6, 3, network="mpo")  # type: ignore[arg-type]
    with pytest.raises(tnlayers.OptionError, match="padding_mode must be 'zeros'"):
        TNConv2d(4, 6, 3, padding_mode="reflect", network=tnlayers.low_rank(36, 6, 2))
