"""Pass-through legs (an index on both the input and the output side): block-diagonal weights,
the butterfly and block-diagonal builders, executed as batched matmuls and never as a δ."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import tnlayers
from tnlayers import Network, TNLinear
from tnlayers.contraction import compile_contraction, plan

F64 = torch.float64


def _values(net: Network, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {t: torch.randn(net.shape(t), dtype=F64, generator=gen) for t in net.tensor_names}


def _check(net: Network, weight: torch.Tensor, values: dict[str, torch.Tensor]) -> None:
    """Both strategies, with and without gradients, equal ``x @ weight.T + b``."""
    bias = torch.randn(net.out_features, dtype=F64)
    x = torch.randn(5, net.in_features, dtype=F64)
    for strategy in ("sequential", "materialize"):
        layer = TNLinear.from_tensors(net, values, bias, strategy=strategy)
        torch.testing.assert_close(layer.to_dense(), weight)
        torch.testing.assert_close(layer(x), x @ weight.T + bias)
        with torch.no_grad():
            torch.testing.assert_close(layer(x), x @ weight.T + bias)
    assert Network.from_json(net.to_json()) == net


@settings(max_examples=30)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.booleans(), st.integers(0, 99))
def test_block_diagonal_weight_is_torch_block_diag(blocks, size_in, size_out, swap, seed):
    net = tnlayers.block_diagonal(blocks * size_in, blocks * size_out, blocks)
    assert net.passthrough == ("p",)
    assert net.num_params == blocks * size_in * size_out
    values = _values(net, seed)
    weight = torch.block_diag(*values["B"])
    _check(net, weight, values)
    if swap:  # the block leg last on the input side: columns interleave, as the reshape says
        moved = Network(
            {"B": {"p": blocks, "j": size_out, "i": size_in}}, inputs=["i", "p"], outputs=["p", "j"]
        )
        cols = torch.arange(blocks * size_in).reshape(blocks, size_in).T.reshape(-1)
        _check(moved, weight[:, cols], values)  # column i·blocks + p is block p's column i


def test_passthrough_by_string_with_shared_and_padded_legs():
    # p passes through both tensors; the input is padded from 20 to 24 features.
    sizes = {"p": 2, "q": 3, "a": 2, "i": 4, "j": 5, "k": 3}
    net = Network.from_einsum("pqai,apjk : piq -> kpj", sizes, in_features=20, allow_padding=True)
    assert net.passthrough == ("p",)
    assert net.weight_legs == ("k", "p", "j", "i", "q")
    values = _values(net, 1)
    blocks = torch.einsum("pqai,apjk->kpjiq", values["T0"], values["T1"])
    full = torch.einsum("kpjiq,pr->kpjriq", blocks, torch.eye(2, dtype=F64))  # δ on p
    weight = full.reshape(30, 24)[:, :20]
    _check(net, weight, values)


def test_passthrough_runs_as_a_batched_matmul_never_a_delta():
    net = tnlayers.block_diagonal(768, 512, 4)
    the_plan = plan(net, 256)
    materialize = the_plan.strategies["materialize"]
    # The weight built is the blocks (4 · 128 · 192), not the dense 512 × 768 with zeros.
    assert materialize.contractions[0].steps[-1].size == 4 * 128 * 192
    gemm = materialize.contractions[1]
    assert [s.kind for s in compile_contraction(gemm).steps] == ["matmul"]
    assert gemm.steps[0].batch == 4 and gemm.flops == 2 * 256 * 768 * 512 // 4
    sequential = the_plan.strategies["sequential"]
    assert [s.kind for s in compile_contraction(sequential.contractions[0]).steps] == ["matmul"]
    assert not sequential.forms_dense_weight
    report = tnlayers.cost(net, 256)
    assert report.strategies["materialize"].flops == materialize.flops
    assert report.dense_params == 768 * 512


def test_passthrough_gradients_and_state_dict():
    net = Network.from_einsum("pai,pjb,ab : pi -> jp", {"p": 2, "a": 2, "b": 3, "i": 3, "j": 2})
    for strategy in ("sequential", "materialize"):
        layer = TNLinear(net, strategy=strategy, dtype=F64)
        x = torch.randn(4, net.in_features, dtype=F64, requires_grad=True)
        values = [t.detach().clone().requires_grad_(True) for t in layer.tensors.values()]

        def functional(x, *vals, layer=layer):
            return torch.func.functional_call(
                layer, {f"tensors.{n}": v for n, v in zip(layer.tensors, vals, strict=True)}, (x,)
            )

        assert torch.autograd.gradcheck(functional, (x, *values))
        copy = TNLinear(net, strategy=strategy, dtype=F64)
        copy.load_state_dict(layer.state_dict())
        torch.testing.assert_close(copy(x), layer(x), rtol=0, atol=0)


def test_fit_recovers_blocks_and_counts_what_lies_off_them():
    net = Network.from_einsum(
        "pqai,apjk : piq -> kpj", {"p": 2, "q": 3, "a": 2, "i": 4, "j": 5, "k": 3}
    )
    values = _values(net, 3)
    target = tnlayers.contraction.contract_weight(net, values)
    assert tnlayers.fit(net, target).error < 1e-6
    dense = torch.randn(net.out_features, net.in_features, dtype=F64)
    single = tnlayers.block_diagonal(24, 30, 2)
    result = tnlayers.fit(single, dense)
    on_blocks = torch.block_diag(torch.ones(15, 12), torch.ones(15, 12)).bool()
    off = torch.linalg.norm(dense[~on_blocks]) / torch.linalg.norm(dense)
    assert result.error == pytest.approx(off.item(), rel=1e-9)


def test_conv_with_a_block_diagonal_kernel():
    # A 1×1 convolution whose channel map is block-diagonal: grouped-convolution structure.
    net = tnlayers.block_diagonal(8, 6, 2)
    for strategy in ("sequential", "materialize"):
        conv = tnlayers.TNConv2d(8, 6, 1, network=net, strategy=strategy, dtype=F64)
        x = torch.randn(2, 8, 5, 5, dtype=F64)
        kernel = conv.to_dense().reshape(6, 8, 1, 1)
        torch.testing.assert_close(conv(x), nn.functional.conv2d(x, kernel, conv.bias))
    reference = nn.Conv2d(8, 6, 1, groups=2, dtype=F64)
    conv = tnlayers.TNConv2d(8, 6, 1, network=net, dtype=F64)
    with torch.no_grad():
        conv.tensors["B"].copy_(reference.weight.reshape(2, 3, 4))
        conv.bias.copy_(reference.bias)
    torch.testing.assert_close(conv(x), reference(x))


@settings(max_examples=20)
@given(st.integers(2, 64), st.integers(0, 99))
def test_butterfly_is_a_product_of_two_by_two_block_factors(n, seed):
    net = tnlayers.butterfly(n)
    bits = (n - 1).bit_length()
    size = 2**bits
    assert net.num_params == 2 * size * bits
    assert net.padded_in_features == size and net.in_features == n
    values = _values(net, seed)
    # Each factor as an explicit size × size matrix acting on bit k; W is their product.
    product = torch.eye(size, dtype=F64)
    for k in range(1, bits + 1):
        factor = torch.zeros(size, size, dtype=F64)
        f = values[f"f{k}"].reshape(2 ** (k - 1), 2, 2, 2 ** (bits - k))  # (j<k, jk, ik, i>k)
        for high in range(2 ** (k - 1)):
            for low in range(2 ** (bits - k)):
                for jk in range(2):
                    for ik in range(2):
                        row = (high * 2 + jk) * 2 ** (bits - k) + low
                        col = (high * 2 + ik) * 2 ** (bits - k) + low
                        factor[row, col] = f[high, jk, ik, low]
        assert (factor != 0).sum(1).max() <= 2  # two entries per row: one 2 × 2 block each
        product = factor @ product
    _check(net, product[:n, :n], values)


def test_partial_butterfly_passes_the_unmixed_bits_through():
    net = tnlayers.butterfly(16, factors=2)
    assert net.passthrough == ("p3", "p4") and net.num_params == 2 * 2 * 16
    weight = TNLinear(net, dtype=F64).to_dense()
    # Only bits 1 and 2 mix: W = B ⊗ I₄ up to the blocks, so W[r, c] = 0 unless r ≡ c mod 4.
    rows, cols = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    assert torch.all(weight[(rows - cols) % 4 != 0] == 0)
    with pytest.raises(tnlayers.NetworkSpecError, match="at most 4 factors; got factors=5"):
        tnlayers.butterfly(16, factors=5)


@pytest.mark.parametrize(
    "net",
    [tnlayers.butterfly(256), tnlayers.block_diagonal(256, 256, 8)],
    ids=["butterfly", "block_diagonal"],
)
def test_new_builders_initialise_like_nn_linear(net):
    torch.manual_seed(0)
    std = TNLinear(net).to_dense().std().item()
    reference = nn.Linear(net.in_features, net.out_features).weight.std().item()
    assert abs(std - reference) / reference < 0.25


def test_large_block_diagonal_starts_at_nn_linear_scale_without_the_empirical_check():
    # 4096² = 16.8M dense entries: above the size at which init measures and rescales the
    # weight, so the analytic rule alone must count the blocks' zeros.
    torch.manual_seed(0)
    net = tnlayers.block_diagonal(4096, 4096, 8)
    assert net.dense_params > 1 << 22
    std = TNLinear(net).to_dense().std().item()
    reference = 1 / math.sqrt(3 * 4096)
    assert abs(std - reference) / reference < 0.05


def test_block_diagonal_validation():
    with pytest.raises(tnlayers.NetworkSpecError, match=r"in_dims=10 does not split into 4"):
        tnlayers.block_diagonal(10, 8, 4)
    with pytest.raises(tnlayers.NetworkSpecError, match="blocks must be a positive integer"):
        tnlayers.block_diagonal(8, 8, 0)
    assert tnlayers.block_diagonal([3], [2], 5).in_features == 15


def test_passthrough_leg_interops_with_tensornetwork_and_draws(tmp_path):
    pytest.importorskip("matplotlib")
    import tensornetwork as tn

    from tnlayers.contraction import from_tensornetwork, to_tensornetwork

    net = Network.from_einsum("pai,pjb,ab : pi -> jp", {"p": 2, "a": 2, "b": 3, "i": 3, "j": 2})
    values = _values(net, 5)
    weight = tnlayers.contraction.contract_weight(net, values)
    nodes, ins, outs = to_tensornetwork(net, values)
    back, arrays = from_tensornetwork(list(nodes.values()), ins, outs)
    assert len(back.passthrough) == 1
    rebuilt = tnlayers.contraction.contract_weight(
        back, {k: torch.from_numpy(v) for k, v in arrays.items()}
    )
    torch.testing.assert_close(rebuilt, weight)
    nodes, ins, outs = to_tensornetwork(net, values)
    result = tn.contractors.greedy(list(nodes.values()), output_edge_order=outs + ins)
    torch.testing.assert_close(torch.from_numpy(result.tensor).reshape(weight.shape), weight)
    tnlayers.draw(net, tmp_path / "passthrough.png")
    assert (tmp_path / "passthrough.png").stat().st_size > 0
    assert math.prod(net.in_dims) == net.in_features
