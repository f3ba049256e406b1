"""Declaring networks: structure, validation messages, serialisation, signatures."""

import pickle

import pytest
from hypothesis import given

import tnlayers
from tnlayers import Network, NetworkSpecError

from ..strategies import any_network


def two_core():
    return Network(
        {"A": {"j1": 2, "i1": 3, "b": 4}, "B": {"b": 4, "j2": 5, "i2": 6}},
        inputs=["i1", "i2"],
        outputs=["j1", "j2"],
    )


def test_structure_of_a_two_core_network():
    net = two_core()
    assert net.tensor_names == ("A", "B")
    assert net.legs("B") == ("b", "j2", "i2")
    assert net.shape("A") == (2, 3, 4)
    assert (net.in_features, net.out_features) == (18, 10)
    assert net.num_params == 2 * 3 * 4 + 4 * 5 * 6
    assert net.dense_params == 180
    assert net.bonds == ("b",)
    assert net.hyperedges == ()
    assert net.summed_indices == ("b",)
    assert not net.is_padded


def test_hyperedge_is_recognised_and_summed():
    net = tnlayers.kronecker((2, 3, 4), (2, 2, 2), terms=3)
    assert net.hyperedges == ("k",)
    assert net.summed_indices == ("k",)
    assert net.num_params == 3 * (4 + 6 + 8)


def test_graph_is_bipartite_with_axis_positions():
    graph = two_core().graph
    assert graph.nodes[("index", "b")]["size"] == 4
    assert graph.nodes[("index", "i1")]["side"] == "input"
    assert graph.edges[("tensor", "B"), ("index", "i2")]["axis"] == 2
    assert graph.number_of_edges() == 6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tensors": {}, "inputs": [], "outputs": []}, r"the network is empty"),
        (
            {
                "tensors": {"A": {"i": 2, "b": 3}, "B": {"b": 4, "j": 2}},
                "inputs": ["i"],
                "outputs": ["j"],
            },
            r"index 'b' has size 3 on tensor 'A' but 4 on tensor 'B'",
        ),
        (
            {
                "tensors": {"A": {"i": 2, "b": 3, "c": 5}, "B": {"b": 3, "j": 2}},
                "inputs": ["i"],
                "outputs": ["j"],
            },
            r"open leg 'c' of tensor 'A' \(size 5\) is assigned to neither side",
        ),
        (
            {
                "tensors": {"A": {"i": 2, "j": 3}, "B": {"k": 2, "l": 3}},
                "inputs": ["i", "k"],
                "outputs": ["j", "l"],
            },
            r"disconnected: tensors \{'A'\} and \{'B'\} share no index",
        ),
        (
            {
                "tensors": [("A", {"i": 2, "b": 2}), ("A", {"b": 2, "j": 2})],
                "inputs": ["i"],
                "outputs": ["j"],
            },
            r"tensor name 'A' is used twice",
        ),
        (
            {"tensors": {"A": [("i", 2), ("i", 2), ("j", 3)]}, "inputs": ["i"], "outputs": ["j"]},
            r"tensor 'A' lists leg 'i' twice",
        ),
        (
            {"tensors": {"A": {"i": 2, "j": 3}}, "inputs": ["i", "i"], "outputs": ["j"]},
            r"input leg 'i' is listed twice",
        ),
        (
            {"tensors": {"A": {"i": 2, "j": 3}}, "inputs": ["x"], "outputs": ["j"]},
            r"input leg 'x' is not a leg of any tensor \(legs: i, j\)",
        ),
        (
            {"tensors": {"A": {"i": 2, "j": 0}}, "inputs": ["i"], "outputs": ["j"]},
            r"leg 'j' of tensor 'A' has size 0",
        ),
        (
            {"tensors": {"A": {"i": 2, "j": 3}}, "inputs": [], "outputs": ["i", "j"]},
            r"no input legs",
        ),
        (
            {"tensors": {"A": {}}, "inputs": [], "outputs": []},
            r"tensor 'A' has no legs",
        ),
        (
            {"tensors": {"my-core": {"i": 2, "j": 3}}, "inputs": ["i"], "outputs": ["j"]},
            r"tensor name 'my-core' is not valid",
        ),
        (
            {"tensors": {"A": {"i": 2, "j": 3}}, "inputs": "i", "outputs": ["j"]},
            r"input legs must be a sequence of leg names, got the string 'i'",
        ),
    ],
)
def test_validation_names_the_culprit(kwargs, message):
    with pytest.raises(NetworkSpecError, match=message):
        Network(**kwargs)


def test_feature_size_mismatch_names_legs_and_sizes():
    with pytest.raises(
        NetworkSpecError, match=r"input legs i1 \(3\) × i2 \(6\) multiply to 18, but in_features=20"
    ):
        Network(
            {"A": {"j1": 2, "i1": 3, "b": 4}, "B": {"b": 4, "j2": 5, "i2": 6}},
            ["i1", "i2"],
            ["j1", "j2"],
            in_features=20,
        )
    with pytest.raises(NetworkSpecError, match=r"multiply to 18, but in_features=17; pass allow_"):
        two_core().replace(in_features=17, allow_padding=False)
    padded = two_core().replace(in_features=17, out_features=7, allow_padding=True)
    assert (padded.in_features, padded.out_features, padded.is_padded) == (17, 7, True)


def test_errors_are_value_errors_and_library_errors():
    with pytest.raises(ValueError):
        Network({}, [], [])
    assert issubclass(NetworkSpecError, tnlayers.TNLayersError)


def test_network_is_immutable():
    net = two_core()
    with pytest.raises(AttributeError, match="immutable"):
        net._inputs = ("x",)
    with pytest.raises(TypeError):
        net.sizes["b"] = 9


def test_replace_grows_a_bond_and_keeps_the_original():
    net = two_core()
    bigger = net.replace(sizes={"b": 8})
    assert bigger.shape("A") == (2, 3, 8) and net.shape("A") == (2, 3, 4)
    assert bigger.signature != net.signature


@given(any_network)
def test_json_round_trip_is_exact(net):
    again = Network.from_json(net.to_json())
    assert again == net
    assert again.signature == net.signature
    assert again.to_dict() == net.to_dict()
    assert pickle.loads(pickle.dumps(net)) == net


def test_signature_is_stable_across_processes():
    # A hard-coded value would pin the hash function; instead rebuild from independent pieces.
    a = tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 2)
    b = Network.from_dict(a.to_dict())
    assert a.signature == b.signature and len(a.signature) == 16
    assert a.signature != tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 3).signature


def test_from_dict_rejects_foreign_data():
    with pytest.raises(NetworkSpecError, match="not a tnlayers network description"):
        Network.from_dict({"format": "something"})


def test_from_einsum_single_and_multi_character_legs():
    sizes = {"i": 2, "k": 3, "j": 4, "a": 5, "b": 6}
    net = Network.from_einsum("ia,ajb,bk : ik -> j", sizes)
    assert net.shapes == {"T0": (2, 5), "T1": (5, 4, 6), "T2": (6, 3)}
    assert (net.inputs, net.outputs) == (("i", "k"), ("j",))
    long = Network.from_einsum(
        "i1 bond, bond j1 : i1 -> j1", {"i1": 3, "bond": 2, "j1": 4}, names=["V", "U"]
    )
    assert long.tensor_names == ("V", "U") and long.legs("U") == ("bond", "j1")
    with pytest.raises(NetworkSpecError, match="no size given for leg 'z'"):
        Network.from_einsum("iz,zj : i -> j", {"i": 2, "j": 2})
    with pytest.raises(NetworkSpecError, match="must look like"):
        Network.from_einsum("ia,aj -> j", sizes)
