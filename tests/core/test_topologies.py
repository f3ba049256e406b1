"""Tensor ring, CP, Tucker and tree builders: parameter counts in closed form, the weight equal
to the formula written out with torch.einsum, gradients, JSON, initialisation and validation."""

from __future__ import annotations

import math
import string

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import tnlayers
from tnlayers import Network, NetworkSpecError, TNLinear

F64 = torch.float64
SIDE = st.lists(st.integers(1, 4), min_size=1, max_size=4)
PAIRED = st.integers(1, 4).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(1, 4), min_size=n, max_size=n),
        st.lists(st.integers(1, 4), min_size=n, max_size=n),
    )
)


def _values(net: Network, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {t: torch.randn(net.shape(t), dtype=F64, generator=gen) for t in net.tensor_names}


def _matrix(tensor: torch.Tensor, outs: int) -> torch.Tensor:
    """``(J_1, …, J_m, I_1, …)`` → ``(ΠJ, ΠI)``."""
    rows = math.prod(tensor.shape[:outs])
    return tensor.reshape(rows, -1)


def _check_layer(net: Network, weight: torch.Tensor, seed: int = 0) -> None:
    """The layer's weight and forward pass equal the reference ``weight`` (out × in)."""
    values = _values(net, seed)
    layer = TNLinear.from_tensors(net, values, torch.randn(net.out_features, dtype=F64))
    torch.testing.assert_close(layer.to_dense(), weight)
    x = torch.randn(3, net.in_features, dtype=F64)
    torch.testing.assert_close(layer(x), x @ weight.T + layer.bias)
    assert Network.from_json(net.to_json()) == net


@given(PAIRED, st.integers(1, 3), st.integers(0, 1000))
def test_tensor_ring(dims, bond, seed):
    ins, outs = dims
    if len(ins) < 2:
        with pytest.raises(NetworkSpecError, match="at least 2 cores"):
            tnlayers.tensor_ring(ins, outs, bond)
        return
    net = tnlayers.tensor_ring(ins, outs, bond)
    assert net.num_params == bond**2 * sum(i * j for i, j in zip(ins, outs, strict=True))
    cores = [_values(net, seed)[f"core{k}"] for k in range(1, len(ins) + 1)]
    # tr Π_k G_k[:, j_k, i_k, :], one explicit matrix product per entry block
    n = len(ins)
    letters = iter(string.ascii_letters)
    b = [next(letters) for _ in range(n)]  # b[k] joins core k and core k+1 (cyclically)
    j = [next(letters) for _ in range(n)]
    i = [next(letters) for _ in range(n)]
    terms = [f"{b[k - 1]}{j[k]}{i[k]}{b[k]}" for k in range(n)]
    weight = torch.einsum(f"{','.join(terms)}->{''.join(j)}{''.join(i)}", *cores)
    _check_layer(net, _matrix(weight, n), seed)


@given(SIDE, SIDE, st.integers(1, 3), st.integers(0, 1000))
def test_cp(ins, outs, rank, seed):
    net = tnlayers.cp(ins, outs, rank)
    assert net.num_params == rank * (sum(ins) + sum(outs))
    values = _values(net, seed)
    # Σ_r Π_m A_m[r, i_m] Π_m C_m[r, j_m], the outer products written out term by term
    weight = torch.zeros(math.prod(outs), math.prod(ins), dtype=F64)
    for r in range(rank):
        left = torch.ones(1, dtype=F64)
        for m in range(1, len(outs) + 1):
            left = torch.kron(left, values[f"c{m}"][r])
        right = torch.ones(1, dtype=F64)
        for m in range(1, len(ins) + 1):
            right = torch.kron(right, values[f"a{m}"][r])
        weight += torch.outer(left, right)
    _check_layer(net, weight, seed)


@given(SIDE, SIDE, st.integers(1, 3), st.integers(0, 1000), st.booleans())
def test_tucker(ins, outs, rank, seed, per_leg):
    ranks = [rank + k % 2 for k in range(len(ins) + len(outs))] if per_leg else rank
    net = tnlayers.tucker(ins, outs, ranks)
    sizes = ranks if isinstance(ranks, list) else [rank] * (len(ins) + len(outs))
    expected = math.prod(sizes) + sum(d * r for d, r in zip([*ins, *outs], sizes, strict=True))
    assert net.num_params == expected
    values = _values(net, seed)
    # (V_1 ⊗ … ) · unfold(G) · (U_1 ⊗ …)ᵀ: the Tucker product as Kronecker matrices
    core = values["core"].reshape(math.prod(sizes[: len(ins)]), math.prod(sizes[len(ins) :]))
    u = torch.ones(1, 1, dtype=F64)
    for m in range(1, len(ins) + 1):
        u = torch.kron(u, values[f"u{m}"])
    v = torch.ones(1, 1, dtype=F64)
    for m in range(1, len(outs) + 1):
        v = torch.kron(v, values[f"v{m}"])
    _check_layer(net, v @ core.T @ u.T, seed)


def _tree_weight(values: dict[str, torch.Tensor], net: Network) -> torch.Tensor:
    """Contract the tree bottom-up by hand: each node's subtree as (open legs, parent bond)."""
    n = len(net.in_dims)
    if n == 1:
        return values["leaf1"].T
    # subtree[name] = tensor [J-block, I-block, parent bond] over that subtree's leaves
    subtree = {f"leaf{k}": values[f"leaf{k}"].permute(1, 0, 2) for k in range(1, n + 1)}
    level = [f"leaf{k}" for k in range(1, n + 1)]
    depth = 0
    while len(level) > 1:
        depth += 1
        parents = []
        for index in range(0, len(level) - 1, 2):
            parent = f"node{depth}_{index // 2 + 1}"
            a, b = subtree[level[index]], subtree[level[index + 1]]
            node = values[parent]
            if node.dim() == 2:  # the root: children's bonds only
                merged = torch.einsum("jia,lkb,ab->jlik", a, b, node)
                subtree[parent] = merged.reshape(
                    a.shape[0] * b.shape[0], a.shape[1] * b.shape[1], 1
                )
            else:
                merged = torch.einsum("jia,lkb,abc->jlikc", a, b, node)
                subtree[parent] = merged.reshape(
                    a.shape[0] * b.shape[0], a.shape[1] * b.shape[1], node.shape[-1]
                )
            parents.append(parent)
        if len(level) % 2:
            parents.append(level[-1])
        level = parents
    return subtree[level[0]][..., 0]


@settings(max_examples=20)  # planning a 4-leaf tree runs the exhaustive path search
@given(PAIRED, st.integers(1, 3), st.integers(0, 1000))
def test_tree(dims, bond, seed):
    ins, outs = dims
    net = tnlayers.tree(ins, outs, bond)
    n = len(ins)
    pairs = sum(i * j for i, j in zip(ins, outs, strict=True))
    expected = ins[0] * outs[0] if n == 1 else bond * pairs + (n - 2) * bond**3 + bond**2
    assert net.num_params == expected
    assert len(net.tensor_names) == 2 * n - 1
    _check_layer(net, _tree_weight(_values(net, seed), net), seed)


BUILDERS = {
    "tensor_ring": lambda: tnlayers.tensor_ring(64, 48, 3, cores=3),
    "cp": lambda: tnlayers.cp(64, 48, 5, parts=3),
    "tucker": lambda: tnlayers.tucker(64, 48, 3, parts=2),
    "tree": lambda: tnlayers.tree(64, 48, 3, leaves=3),
    "btt": lambda: tnlayers.btt(64, 48, 2),
}


@pytest.mark.parametrize("name", BUILDERS)
def test_integer_sizes_factorise_and_gradients_check(name):
    net = BUILDERS[name]()
    assert (net.in_features, net.out_features) == (64, 48)
    assert math.prod(net.in_dims) == 64 and math.prod(net.out_dims) == 48
    layer = TNLinear(net, dtype=F64)
    x = torch.randn(2, 64, dtype=F64, requires_grad=True)
    params = list(layer.parameters())

    def run(x, *values):
        state = dict(zip([n for n, _ in layer.named_parameters()], values, strict=True))
        return torch.func.functional_call(layer, state, (x,))

    assert torch.autograd.gradcheck(run, (x, *params))


@pytest.mark.parametrize("name", BUILDERS)
@settings(max_examples=5)
@given(seed=st.integers(0, 100))
def test_initialisation_has_nn_linear_scale(name, seed):
    net = BUILDERS[name]()
    layer = TNLinear(net, generator=torch.Generator().manual_seed(seed))
    dense = nn.Linear(64, 48)
    ratio = layer.to_dense().std().item() / dense.weight.std().item()
    assert 0.75 < ratio < 1.25


def test_validation_names_the_argument():
    with pytest.raises(NetworkSpecError, match="rank must be a positive integer, got 0"):
        tnlayers.cp((2, 3), (4,), 0)
    with pytest.raises(NetworkSpecError, match=r"needs 3 ranks .*got ranks=\(2, 2\)"):
        tnlayers.tucker((2, 3), (4,), (2, 2))
    with pytest.raises(NetworkSpecError, match="ranks\\[1\\] must be a positive integer"):
        tnlayers.tucker((2, 3), (4,), (2, 0, 2))
    with pytest.raises(NetworkSpecError, match="tensor ring of 3 cores has 3 bonds"):
        tnlayers.tensor_ring((2, 2, 2), (2, 2, 2), (2, 2))
    with pytest.raises(NetworkSpecError, match="pairs input and output legs"):
        tnlayers.tree((2, 2, 2), (2, 2), 2)
    with pytest.raises(NetworkSpecError, match="bond must be a positive integer, got -1"):
        tnlayers.tree((2, 2), (2, 2), -1)
    with pytest.raises(tnlayers.ArgumentTypeError, match="in_dims must be a positive integer"):
        tnlayers.cp("784", 10, 2)  # type: ignore[arg-type]


def test_split_counts_are_named_as_in_the_signature():
    with pytest.raises(NetworkSpecError, match="leaves must be a positive integer, got 0"):
        tnlayers.tree(64, 48, 2, leaves=0)
    with pytest.raises(NetworkSpecError, match="cores must be a positive integer, got 0"):
        tnlayers.tensor_ring(64, 48, 2, cores=0)
    with pytest.raises(NetworkSpecError, match="parts must be a positive integer, got 0"):
        tnlayers.cp(64, 48, 2, parts=0)


@given(
    st.tuples(st.integers(1, 4), st.integers(1, 4)),
    st.tuples(st.integers(1, 4), st.integers(1, 4)),
    st.integers(1, 3),
    st.integers(0, 1000),
)
def test_btt(ins, outs, rank, seed):
    net = tnlayers.btt(ins, outs, rank)
    (i1, i2), (j1, j2) = ins, outs
    assert net.num_params == rank * i1 * j1 * (i2 + j2)
    values = _values(net, seed)
    # W[(j1, j2), (i1, i2)] = Σ_r A[i1, i2, j1, r] · B[j1, i1, r, j2]: Qiu et al.'s definition
    weight = torch.zeros(j1, j2, i1, i2, dtype=F64)
    for a in range(i1):
        for c in range(j1):
            block = values["B"][c, a].T @ values["A"][a, :, c].T  # (j2, r) · (r, i2)
            weight[c, :, a, :] = block
    _check_layer(net, weight.reshape(j1 * j2, i1 * i2), seed)


def test_btt_runs_as_batched_matmuls_never_a_dense_or_delta_tensor():
    from tnlayers.contraction import compile_contraction, plan

    for net in (tnlayers.monarch(1024, 1024), tnlayers.btt(784, 256, 4)):
        the_plan = plan(net, 256)
        sequential = the_plan.strategies["sequential"]
        steps = compile_contraction(sequential.contractions[0]).steps
        assert [step.kind for step in steps] == ["matmul", "matmul"]
        assert not sequential.forms_dense_weight
        assert sequential.weight_sized_elements == 0  # every step carries the batch


def test_monarch_is_the_balanced_rank_one_btt():
    assert tnlayers.monarch(1024, 1024) == tnlayers.btt((32, 32), (32, 32), 1)
    assert tnlayers.monarch(1024, 1024).num_params == 2 * 32**3
    net = tnlayers.monarch(784, 256)
    assert net.in_dims == (28, 28) and net.out_dims == (16, 16)
    with pytest.raises(NetworkSpecError, match="in_features must be a positive integer"):
        tnlayers.monarch(0, 16)


def test_shared_open_legs_by_string_and_json():
    # Monarch's form written by hand: a is an input leg of both tensors, c an output leg of both.
    net = Network.from_einsum("acb,cda : ab -> cd", sizes={"a": 3, "b": 4, "c": 2, "d": 5})
    assert Network.from_json(net.to_json()) == net
    values = _values(net, 0)
    weight = torch.einsum("acb,cda->cdab", values["T0"], values["T1"]).reshape(10, 12)
    _check_layer(net, weight)
    report = tnlayers.cost(net, 16)
    assert report.strategies["sequential"].flops > 0 and "a" in str(report)


@settings(max_examples=25)
@given(
    st.integers(1, 2),
    st.integers(1, 3),
    st.integers(1, 2),
    st.integers(0, 1000),
    st.data(),
)
def test_grid(rows, cols, bond, seed, data):
    n = rows * cols
    ins = data.draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    outs = data.draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    net = tnlayers.grid(ins, outs, bond, shape=(rows, cols))

    def neighbours(r, c):
        return sum(
            0 <= r + dr < rows and 0 <= c + dc < cols
            for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0))
        )

    expected = sum(
        ins[r * cols + c] * outs[r * cols + c] * bond ** neighbours(r, c)
        for r in range(rows)
        for c in range(cols)
    )
    assert net.num_params == expected
    # The grid written out: one letter per leg, bonds between horizontal and vertical neighbours.
    values = _values(net, seed)
    letters = iter(string.ascii_letters)
    i = [next(letters) for _ in range(n)]
    j = [next(letters) for _ in range(n)]
    h = {(r, c): next(letters) for r in range(rows) for c in range(cols - 1)}
    v = {(r, c): next(letters) for r in range(rows - 1) for c in range(cols)}
    terms, operands = [], []
    for r in range(rows):
        for c in range(cols):
            k = r * cols + c
            legs = i[k] + j[k]
            legs += h.get((r, c - 1), "") + h.get((r, c), "")
            legs += v.get((r - 1, c), "") + v.get((r, c), "")
            terms.append(legs)
            site = values[f"site{r + 1}_{c + 1}"]
            # The builder lists legs as i, j, left, right, up, down: the same order as here.
            operands.append(site)
    weight = torch.einsum(f"{','.join(terms)}->{''.join(j)}{''.join(i)}", *operands)
    _check_layer(net, weight.reshape(math.prod(outs), math.prod(ins)), seed)


def test_grid_shape_must_hold_the_sites():
    with pytest.raises(NetworkSpecError, match=r"a 2 × 3 grid has 6 sites, but there are 4"):
        tnlayers.grid((2, 2, 2, 2), (2, 2, 2, 2), 2, shape=(2, 3))
    with pytest.raises(tnlayers.ArgumentTypeError, match="shape must be a pair"):
        tnlayers.grid(64, 48, 2, shape=(2, 0))
    assert (
        tnlayers.grid(64, 48, 2, shape=(1, 3)).in_dims == tnlayers.mpo(64, 48, 2, cores=3).in_dims
    )
