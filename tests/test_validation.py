"""Every entrance validates: bad input gives a TNLayersError that names the argument."""

import inspect
import json
import math
import subprocess
import sys

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import tnlayers
from tnlayers import (
    GivensLinear,
    KronLinear,
    MPOConv2d,
    MPOLinear,
    Network,
    NetworkSpecError,
    QubitCircuit,
    QubitCircuitLinear,
    TNLayersError,
)
from tnlayers._core.factorize import _balanced, _largest
from tnlayers._core.network import RESERVED_TENSOR_NAMES
from tnlayers.cli import main

BAD_COUNTS = {"zero": 0, "negative": -3, "float": 4.0, "bool": True, "none": None}

# (what, how to call it with the bad value, the argument's name in the message)
BUILDERS = {
    "mpo in_dims": (lambda v: tnlayers.mpo(v, 4, 2), "in_dims"),
    "mpo out_dims": (lambda v: tnlayers.mpo(4, v, 2), "out_dims"),
    "mpo bond": (lambda v: tnlayers.mpo((2, 2), (2, 2), v), "bond"),
    "mpo cores": (lambda v: tnlayers.mpo(16, 16, 2, cores=v), "cores"),
    "kronecker in_dims": (lambda v: tnlayers.kronecker(v, 4), "in_dims"),
    "kronecker out_dims": (lambda v: tnlayers.kronecker(4, v), "out_dims"),
    "kronecker terms": (lambda v: tnlayers.kronecker(4, 4, v), "terms"),
    "kronecker bodies": (lambda v: tnlayers.kronecker(16, 16, bodies=v), "bodies"),
    "low_rank in_features": (lambda v: tnlayers.low_rank(v, 4, 2), "in_features"),
    "low_rank rank": (lambda v: tnlayers.low_rank(4, 4, v), "rank"),
    "factorize features": (lambda v: tnlayers.contraction.factorize(v, 2), "factorise"),
    "factorize parts": (lambda v: tnlayers.contraction.factorize(12, v), "parts"),
    "MPOLinear in_features": (lambda v: MPOLinear(v, 4, bond=2), "in_features"),
    "MPOLinear out_features": (lambda v: MPOLinear(4, v, bond=2), "out_features"),
    "MPOLinear bond": (lambda v: MPOLinear(16, 16, bond=v), "bond"),
    "MPOConv2d in_channels": (lambda v: MPOConv2d(v, 4, 3, bond=2), "in_channels"),
    "MPOConv2d kernel_size": (lambda v: MPOConv2d(3, 4, v, bond=2), "kernel_size"),
    "MPOConv2d stride": (lambda v: MPOConv2d(3, 4, 3, bond=2, stride=v), "stride"),
    "MPOConv2d dilation": (lambda v: MPOConv2d(3, 4, 3, bond=2, dilation=v), "dilation"),
    "KronLinear in_features": (lambda v: KronLinear(v, 16), "in_features"),
    "KronLinear terms": (lambda v: KronLinear(16, 16, terms=v), "terms"),
    "KronLinear bodies": (lambda v: KronLinear(16, 16, bodies=v), "bodies|parts"),
    "GivensLinear n": (lambda v: GivensLinear(v), "GivensCircuit|dimension"),
    "QubitCircuit num_qubits": (lambda v: QubitCircuit(v), "num_qubits"),
}


# None is the default of cores and bodies (chosen automatically), so not a bad value there.
BAD_CASES = [
    (target, kind)
    for target in BUILDERS
    for kind in BAD_COUNTS
    if not (kind == "none" and target.endswith(("cores", "bodies")))
]


@pytest.mark.parametrize(("target", "kind"), BAD_CASES)
def test_bad_counts_name_the_argument(target, kind):
    call, name = BUILDERS[target]
    value = BAD_COUNTS[kind]
    if kind == "bool" and target.startswith("mpo bond"):
        value = False  # True is 1, a legal bond; False is not
    with pytest.raises(TNLayersError, match=name):
        call(value)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: tnlayers.mpo((), 4, 2), "in_dims must be positive integers"),
        (lambda: tnlayers.mpo((4, 0), (4, 4), 2), r"in_dims must be positive integers.*\(4, 0\)"),
        (lambda: tnlayers.mpo((4, 4), (4,), 2), "as many input legs as output legs"),
        (lambda: tnlayers.mpo((4, 4), (4, 4), (2, 2)), "2 cores has 1 bonds"),
        (lambda: tnlayers.mpo((4, 4), (4, 4), "2"), "bond must be a positive integer"),
        (lambda: tnlayers.mpo("44", 4, 2), "in_dims must be a positive integer"),
        (lambda: tnlayers.kronecker((4, 4), (4,)), "one input and one output leg"),
        (lambda: MPOConv2d(3, 4, 3, bond=2, padding=-1), "padding must be at least 0"),
        (lambda: MPOConv2d(3, 4, (3, 3, 3), bond=2), "kernel_size must be an int or a pair"),
        (lambda: MPOConv2d(3, 4, 3, bond=2, padding="full"), "padding must be 'same'"),
        (lambda: QubitCircuit(2).ry(5), "qubit 5"),
        (lambda: QubitCircuitLinear(None), "needs a QubitCircuit"),
        (lambda: tnlayers.TNLinear("ia,ai"), "needs a tnlayers.Network"),
        (lambda: tnlayers.cost(tnlayers.GivensCircuit.v(8)), "got GivensCircuit; a layer reports"),
        (lambda: tnlayers.plan("ia,ai", 4), "expected a tnlayers.Network, got str"),
    ],
)
def test_mismatched_and_malformed_arguments(call, match):
    with pytest.raises(TNLayersError, match=match):
        call()


def test_mpo_conv_keeps_nn_conv2d_defaults_legal():
    conv = MPOConv2d(3, 4, 3, bond=2, stride=2, padding=0, dilation=1)
    assert (
        conv(torch.randn(1, 3, 9, 9)).shape
        == nn.Conv2d(3, 4, 3, stride=2)(torch.randn(1, 3, 9, 9)).shape
    )


# ---------------------------------------------------------------------- factorisation
def _reference_split(n: int, parts: int, key) -> tuple[int, ...]:
    """Every sorted split of n into parts factors, the best by ``key``."""
    best = None

    def search(rest, k, low, acc):
        nonlocal best
        if k == 1:
            if rest >= low and (best is None or key((*acc, rest)) < key(best)):
                best = (*acc, rest)
            return
        for f in range(low, rest + 1):
            if f**k > rest:
                break
            if rest % f == 0:
                search(rest // f, k - 1, f, (*acc, f))

    search(n, parts, 1, ())
    return best


@given(st.integers(1, 3000), st.integers(1, 5))
def test_splits_match_exhaustive_search(n, parts):
    assert _balanced(n, parts) == _reference_split(n, parts, lambda a: (max(a), -min(a)))
    assert _largest(n, parts) == _reference_split(n, parts, lambda a: (-a[0], -a[-1]))


@pytest.mark.parametrize("size", [250_002, 1_000_003, 999_999_937, 735_134_400])
@pytest.mark.parametrize("parts", [2, 4, 8])
def test_awkward_large_sizes_factorise(size, parts):
    # mpo(1_000_003, 16, 2) never returned before; speed is measured in bench_factorize.py.
    split = tnlayers.contraction.factorize(size, parts)
    assert math.prod(split.dims) == split.padded >= size
    assert split.padded <= size * 1.1 + 1
    assert math.prod(tnlayers.contraction.kronecker_factors(size, parts)) == size
    assert tnlayers.mpo(size, 16, 2, cores=2).in_features == size


def test_factorisation_caches_are_bounded():
    assert _balanced.cache_info().maxsize is not None
    assert _largest.cache_info().maxsize is not None


# ---------------------------------------------------------------------- names
def test_reserved_tensor_names_cover_every_parameter_dict_attribute():
    instance = nn.ParameterDict()

    def from_torch(name: str) -> bool:
        # Hugging Face transformers patches nn.Module (smart_apply) once a model is built.
        owner = getattr(inspect.getattr_static(instance, name), "__module__", None)
        return not isinstance(owner, str) or owner.startswith("torch")

    attributes = {name for name in dir(instance) if not name.startswith("_") and from_torch(name)}
    assert len(attributes) > 40 and attributes <= RESERVED_TENSOR_NAMES


@pytest.mark.parametrize("name", ["forward", "training", "values", "_private", "state_dict"])
def test_tensor_names_that_collide_with_module_attributes_are_refused(name):
    with pytest.raises(NetworkSpecError, match=f"tensor name '{name}' is reserved"):
        Network.from_einsum("ia,aj : i -> j", {"i": 2, "j": 2, "a": 2}, names=[name, "ok"])


@pytest.mark.parametrize("leg", ["forward", "training", "bias", "tensors"])
def test_leg_names_that_look_like_module_attributes_work(leg):
    net = Network.from_einsum(f"{leg} a, a j : {leg} -> j", {leg: 3, "a": 2, "j": 4})
    layer = tnlayers.TNLinear(net)
    x = torch.randn(5, 3)
    torch.testing.assert_close(layer(x), x @ layer.to_dense().T + layer.bias)


# ---------------------------------------------------------------------- JSON descriptions
def _good() -> dict:
    return tnlayers.mpo((2, 3), (2, 2), 2).to_dict()


def _edit(path, value):
    data = _good()
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


_DELETE = object()

BAD_DESCRIPTIONS = [
    (("tensors",), _DELETE, r"\(top\): missing tensors"),
    (("colour",), "blue", r"unknown field\(s\) colour"),
    (("tensors",), {"a": 1}, r"field tensors: expected a list, got an object"),
    (("tensors", 0, "name"), 7, r"tensors\[0\]\.name: expected a name, got int"),
    (("tensors", 0, "name"), "x" * 1000, r"tensors\[0\]\.name: a name of 1,000 characters"),
    (("tensors", 1, "legs", 0, 1), -2, r"tensors\[1\]\.legs\[0\]\[1\]: expected 1 … "),
    (("tensors", 1, "legs", 0, 1), 2**40, r"tensors\[1\]\.legs\[0\]\[1\]: expected 1 … "),
    (("tensors", 1, "legs", 0, 1), "2", r"legs\[0\]\[1\]: expected a positive integer"),
    (("tensors", 1, "legs", 0, 1), True, r"legs\[0\]\[1\]: expected a positive integer"),
    (("tensors", 1, "legs", 0), ["b1"], r"tensors\[1\]\.legs\[0\]: expected \[leg name, size\]"),
    (("tensors", 0, "extra"), 1, r"tensors\[0\]: expected fields legs, name"),
    (("inputs", 0), None, r"inputs\[0\]: expected a name"),
    (("in_features",), -5, r"field in_features: expected 1 … "),
    (("version",), 99, r"field version: unsupported version 99"),
    (("format",), "other", "not a tnlayers network description"),
]


@pytest.mark.parametrize(("path", "value", "match"), BAD_DESCRIPTIONS)
def test_bad_descriptions_name_the_field(path, value, match):
    data = _edit(path, value)
    with pytest.raises(NetworkSpecError, match=match):
        Network.from_dict(data)
    with pytest.raises(NetworkSpecError, match=match):
        Network.from_json(json.dumps(data))


def test_absurd_tensors_deep_nesting_and_garbage_are_refused():
    data = _good()
    data["tensors"][0]["legs"] = [[f"l{k}", 2**20] for k in range(3)]
    with pytest.raises(NetworkSpecError, match=r"tensors\[0\]\.legs: the tensor would have"):
        Network.from_dict(data)
    with pytest.raises(NetworkSpecError, match=r"nested too deeply|not valid JSON"):
        Network.from_json("[" * 100_000 + "]" * 100_000)
    with pytest.raises(NetworkSpecError, match="not valid JSON"):
        Network.from_json("{{{")
    with pytest.raises(NetworkSpecError, match="expected an object"):
        Network.from_json("[1, 2]")
    with pytest.raises(NetworkSpecError, match="needs a JSON string"):
        Network.from_json(None)


@given(st.recursive(st.none() | st.integers() | st.text(max_size=5), st.lists, max_leaves=20))
def test_any_json_value_is_a_network_or_a_network_spec_error(value):
    try:
        Network.from_dict({**_good(), "tensors": value})
    except NetworkSpecError:
        pass


def test_good_descriptions_round_trip():
    net = tnlayers.mpo(997, 30, 3, cores=3)
    assert Network.from_json(net.to_json()) == net


# ---------------------------------------------------------------------- the command line
CLI_MISUSE = [
    (["cost", "mpo"], "needs --in"),
    (["cost", "mpo", "--in", "x", "--out", "4"], "expected positive integers"),
    (["cost", "no-such-file.json"], "cannot read no-such-file.json"),
    (["cost", "no-such-network"], "unknown network"),
    (["cost", "fc2-mpo1-d2", "--batch", "0"], "--batch: must be positive"),
    (["cost", "fc2-mpo1-d2", "--itemsize", "0"], "--itemsize: must be positive"),
    (["cost", "fc2-mpo1-d2", "--bond", "8"], "--bond does not apply"),
    (["cost", "mpo", "--in", "4,4", "--out", "4,4", "--rank", "3"], "--rank does not apply"),
    (["cost", "low-rank", "--in", "4", "--out", "4", "--bond", "3"], "--bond does not apply"),
    (["cost", "mpo", "--in", "4,4", "--out", "4,4", "--bond", "0"], "must be positive"),
    (["demo", "--epochs", "-1"], "--epochs: must be positive"),
    (["demo", "--epochs", "abc"], "expected a positive int"),
    (["demo", "--seconds", "8"], "unrecognized arguments: --seconds"),
    (["cost", "ia,ab : i -> b"], "needs the size of every leg: --sizes"),
    (["cost", "ia,ab : i -> b", "--sizes", "i=2,a"], "expected leg=size pairs"),
    (["cost", "ia,ab : i -> b", "--sizes", "i=2,a=0,b=3"], "expected leg=size pairs"),
    (["cost", "ia,ab : i -> b", "--sizes", "i=2,a=3"], "no size given for leg 'b'"),
    (["cost", "ia,ab : i -> b", "--sizes", "i=2,a=3,b=4", "--bond", "2"], "--bond does not apply"),
    (["cost", "fc2-mpo1-d2", "--sizes", "i=2"], "--sizes applies only to a network given"),
    (["draw", "fc2-mpo1-d2"], "the following arguments are required: -o/--output"),
    (["draw", "-o", "x.png"], "name the network to draw"),
    (["draw", "fc2-mpo1-d2", "-o", "missing/x.png"], "directory missing does not exist"),
    (["draw", "fc2-mpo1-d2", "-o", "x.png", "--strategy", "materialize"], "only with --path"),
    (["draw", "fc2-mpo1-d2", "-o", "x.png", "--path", "--strategy", "fast"], "invalid choice"),
    (["cost", "--batch"], "expected one argument"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
]


@pytest.mark.parametrize(("argv", "message"), CLI_MISUSE)
def test_cli_misuse_is_one_line_and_exit_code_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        code = main(argv)
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_cli_bad_json_file(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "tnlayers.network"}', encoding="utf-8")
    assert main(["cost", str(bad)]) == 2
    assert "missing version" in capsys.readouterr().err
    bad.write_text("{{{", encoding="utf-8")
    assert main(["cost", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_in_a_real_process_prints_no_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tnlayers.cli", "cost", "missing.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


# ---------------------------------------------------------------------- complex data
def _complex(rows: int, cols: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(rows, cols, dtype=torch.complex128)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


@pytest.mark.parametrize("max_bond", [None, 2, 5])
def test_tt_svd_of_complex_matrices_reports_the_true_error(max_bond):
    w = _complex(16, 16)
    approx = tnlayers.tt_svd(w, (4, 4), (4, 4), max_bond=max_bond)
    dense = approx.mpo.to_dense()
    assert dense.dtype == torch.complex128
    assert approx.error == pytest.approx(_rel(dense, w), abs=1e-9)
    if max_bond is None:
        assert approx.error < 1e-12


def test_complex_mpo_canonical_truncate_norm_match_the_dense_answer():
    mpo = tnlayers.tt_svd(_complex(64, 64), (4, 4, 4), (4, 4, 4), max_bond=6).mpo
    dense = mpo.to_dense()
    assert mpo.norm() == pytest.approx(float(torch.linalg.vector_norm(dense)), rel=1e-10)
    for form in ("left", "right"):
        torch.testing.assert_close(mpo.canonical(form).to_dense(), dense)
    cut = mpo.truncate(max_bond=2)
    assert cut.error == pytest.approx(_rel(cut.mpo.to_dense(), dense), abs=1e-9)
    assert cut.error > 0.1  # the imaginary part counts


def test_nearest_kronecker_complex_two_bodies_and_refusal_beyond():
    w = _complex(16, 16)
    fit = tnlayers.nearest_kronecker(w, (4, 4), (4, 4), terms=3)
    weight = tnlayers.KronLinear.from_approximation(fit).to_dense().detach()
    assert weight.dtype == torch.complex128
    assert fit.error == pytest.approx(_rel(weight, w), abs=1e-9)
    exact = tnlayers.nearest_kronecker(w, (4, 4), (4, 4), terms=16)
    assert exact.error < 1e-10
    with pytest.raises(TNLayersError, match="complex matrix is supported for two bodies"):
        tnlayers.nearest_kronecker(_complex(8, 8), (2, 2, 2), (2, 2, 2))


# ---------------------------------------------------------------------- layers
@pytest.mark.parametrize(
    "make",
    [
        lambda **k: MPOLinear(64, 64, bond=4, **k),
        lambda **k: KronLinear(64, 64, terms=2, **k),
        lambda **k: MPOConv2d(3, 8, 3, bond=2, padding=1, **k),
        lambda **k: tnlayers.TNLinear(tnlayers.mpo((4, 4), (4, 4), 2), **k),
        lambda **k: QubitCircuitLinear(QubitCircuit(2).ry(0).ry(1).cnot(0, 1), **k),
        lambda **k: GivensLinear(8, **k),
    ],
)
def test_meta_device_then_to_empty(make):
    layer = make(device="meta")
    assert all(p.is_meta for p in layer.parameters())
    layer = layer.to_empty(device="cpu")
    layer.reset_parameters()
    x = torch.randn(2, 3, 6, 6) if isinstance(layer, MPOConv2d) else torch.randn(2, 64)
    if not isinstance(layer, MPOConv2d):
        x = x[:, : layer.in_features]
    with torch.no_grad():
        y = layer(x)
    assert torch.isfinite(torch.view_as_real(y) if y.is_complex() else y).all()


def test_qubit_layer_double_computes_in_float64():
    layer = QubitCircuitLinear(QubitCircuit(2).ry(0).rx(1).cnot(0, 1)).double()
    assert layer(torch.randn(3, 4, dtype=torch.float64)).dtype == torch.complex128
    assert layer.to_dense().dtype == torch.complex128


def test_complex_layers_start_at_nn_linear_scale():
    net = tnlayers.mpo((8, 8), (8, 8), 4)
    target = 1 / math.sqrt(3 * 64)
    for dtype in (torch.float32, torch.complex64):
        weight = tnlayers.TNLinear(net, dtype=dtype).to_dense()
        assert weight.abs().pow(2).mean().sqrt().item() == pytest.approx(target, rel=1e-4)


@pytest.mark.slow
def test_cli_into_a_closed_pipe_prints_no_traceback():
    process = subprocess.Popen(
        [sys.executable, "-m", "tnlayers.cli", "cost", "--list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # the reader leaves at once, as `| head -0` would
    err = process.stderr.read()
    process.wait(timeout=120)
    process.stderr.close()
    assert b"Traceback" not in err and b"BrokenPipeError" not in err
