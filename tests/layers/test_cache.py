"""The inference weight cache never serves a stale weight, whatever changes the parameters.

Every check primes the cache with an inference call, changes the parameters one way PyTorch
users do, and compares the next inference call with ``x @ to_dense().T + bias`` (or its
convolution / circuit counterpart), computed without the layer's forward. Each check also asserts
that the change moved the output, so it could catch a stale weight.
"""

import copy
import io
import pickle

import pytest
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torch.nn.utils import parametrize

import tnlayers
from tnlayers import (
    GivensCircuit,
    GivensLinear,
    KronLinear,
    MPOConv2d,
    MPOLinear,
    QubitCircuit,
    QubitCircuitLinear,
    TNLinear,
)

LAYERS = {
    "TNLinear": lambda: TNLinear(tnlayers.mpo((4, 4), (4, 4), 3), strategy="materialize"),
    "MPOLinear": lambda: MPOLinear(16, 12, bond=3, strategy="materialize"),
    "MPOConv2d": lambda: MPOConv2d(2, 4, 3, bond=2, padding=1, strategy="materialize"),
    "KronLinear": lambda: KronLinear(16, 16, terms=2, strategy="materialize"),
    "QubitCircuitLinear": lambda: QubitCircuitLinear(
        QubitCircuit(3).ry(0).ry(1).rx(2).cnot(0, 1).rzz(1, 2), strategy="materialize"
    ),
    "GivensLinear": lambda: GivensLinear(GivensCircuit.clements(6), strategy="materialize"),
}


def _input(layer: nn.Module) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    if isinstance(layer, MPOConv2d):
        return torch.randn(2, layer.in_channels, 5, 5, generator=generator)
    return torch.randn(8, layer.in_features, generator=generator)


def _reference(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's output from its materialized weight, without its forward pass."""
    with torch.no_grad():
        weight = layer.to_dense()
        x = x.to(weight.dtype)
        if isinstance(layer, MPOConv2d):
            kernel = weight.reshape(layer.out_channels, layer.in_channels, *layer.kernel_size)
            return F.conv2d(x, kernel, layer.bias, layer.stride, layer.padding, layer.dilation)
        y = x @ weight.T
        if getattr(layer, "bias", None) is not None:
            y = y + layer.bias
        if isinstance(layer, KronLinear) and layer.kron_bias() is not None:
            y = y + layer.kron_bias()
        return y


def _infer(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return layer(x.to(layer.to_dense().dtype.to_real()))


def _assert_fresh(layer: nn.Module, x: torch.Tensor, before: torch.Tensor | None = None) -> None:
    """The inference output equals the reference; and differs from ``before`` (if given)."""
    y = _infer(layer, x)
    torch.testing.assert_close(y, _reference(layer, x), rtol=1e-5, atol=1e-5)
    if before is not None:
        assert not torch.allclose(y.to(before.dtype), before, atol=1e-4), "nothing changed"


def _primed(kind: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    layer = LAYERS[kind]().eval()
    x = _input(layer)
    before = _infer(layer, x)
    assert layer._weight_cache, "the inference call should have cached the weight"
    return layer, x, before


def _weight_parameters(layer: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in layer.named_parameters() if not n.endswith("bias")]


def _optimisers() -> list[tuple[str, str]]:
    names = ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adamax", "NAdam", "RAdam"]
    names += ["Adadelta", "ASGD", "Rprop"]
    forms = []
    for name in names:
        forms += [(name, "plain"), (name, "foreach")]
        probe = nn.Parameter(torch.zeros(2))
        try:
            getattr(torch.optim, name)([probe], lr=0.1, fused=True)
        except (TypeError, RuntimeError, ValueError):
            continue  # this optimiser has no fused kernel on this build
        forms.append((name, "fused"))
    return forms


OPTIMISERS = _optimisers()


def test_the_fused_forms_the_issue_names_are_covered():
    assert {("Adam", "fused"), ("AdamW", "fused"), ("SGD", "fused")} <= set(OPTIMISERS)


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize(("optimiser", "form"), OPTIMISERS)
def test_optimiser_steps_never_leave_a_stale_weight(kind, optimiser, form):
    layer, x, before = _primed(kind)
    options = {} if form == "plain" else {form: True}
    if form == "plain":
        options["foreach"] = False
    lr = 1.0 if optimiser == "Adadelta" else 0.1
    opt = getattr(torch.optim, optimiser)(layer.parameters(), lr=lr, **options)
    generator = torch.Generator().manual_seed(5)
    for _ in range(2):  # the reported bug showed from the second step on
        # Gradients set directly: the forward pass must not be what refreshes the cache.
        for p in layer.parameters():
            p.grad = torch.randn(p.shape, generator=generator, dtype=p.dtype)
        opt.step()
        _assert_fresh(layer, x, before)
        before = _infer(layer, x)


@pytest.mark.parametrize("kind", LAYERS)
def test_train_validate_loop_with_fused_adamw(kind):
    layer, x, _ = _primed(kind)
    opt = torch.optim.AdamW(layer.parameters(), lr=0.05, fused=True)
    for _ in range(3):
        layer.train()
        out = layer(x.to(layer.to_dense().dtype.to_real()))
        loss = torch.view_as_real(out).pow(2).sum() if out.is_complex() else out.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        layer.eval()
        _assert_fresh(layer, x)
        _assert_fresh(layer, x)  # the second call is served from the cache


EDITS = {
    "data_mul_": lambda p: p.data.mul_(0.5),
    "data_assign": lambda p: setattr(p, "data", p.data * 0.5 + 0.1),
    "copy_": lambda p: p.copy_(p * 0.5 + 0.1),
    "set_": lambda p: p.set_(p.detach().clone() * 0.5 + 0.1),
    "fill_": lambda p: p.fill_(0.3),
    "foreach_mul_": lambda p: torch._foreach_mul_([p], 0.5),
}


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("edit", EDITS)
def test_in_place_edits_never_leave_a_stale_weight(kind, edit):
    layer, x, before = _primed(kind)
    with torch.no_grad():
        for _, p in _weight_parameters(layer):
            EDITS[edit](p)
    _assert_fresh(layer, x, before)


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("how", ["strict", "non-strict", "assign"])
def test_load_state_dict_never_leaves_a_stale_weight(kind, how):
    layer, x, before = _primed(kind)
    torch.manual_seed(99)
    other = LAYERS[kind]().state_dict()
    if how == "non-strict":
        other = {k: v for k, v in other.items() if not k.endswith("bias")}
        layer.load_state_dict(other, strict=False)
    else:
        layer.load_state_dict(other, assign=how == "assign")
    _assert_fresh(layer, x, before)


class _Scale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("factor", torch.tensor(1.0))

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        return value * self.factor


@pytest.mark.parametrize("kind", LAYERS)
def test_parametrisations_work_and_never_leave_a_stale_weight(kind):
    layer, x, before = _primed(kind)
    name, _ = _weight_parameters(layer)[0]
    owner_name, _, leaf = name.rpartition(".")
    owner = layer.get_submodule(owner_name)
    scale = _Scale()
    parametrize.register_parametrization(owner, leaf, scale)
    _assert_fresh(layer, x)  # the parametrised layer runs (it raised KeyError before)
    with torch.no_grad():
        scale.factor.fill_(-2.0)  # only the parametrisation's buffer changes
    _assert_fresh(layer, x, before)
    with parametrize.cached():
        _assert_fresh(layer, x)
    # The original tensor, changed through .data under the parametrisation.
    after = _infer(layer, x)
    getattr(owner.parametrizations, leaf).original.data.mul_(0.25)
    _assert_fresh(layer, x, after)


@pytest.mark.parametrize("kind", LAYERS)
def test_dtype_changes_never_leave_a_stale_weight(kind):
    layer, x, _ = _primed(kind)
    layer.double()
    y = _infer(layer, x.double())
    assert y.dtype in (torch.float64, torch.complex128)
    torch.testing.assert_close(y, _reference(layer, x.double()))
    with torch.no_grad():
        for _, p in _weight_parameters(layer):
            p.mul_(0.5)
    layer.float()
    _assert_fresh(layer, x)


@pytest.mark.parametrize("kind", LAYERS)
def test_deepcopy_and_pickle_give_independent_correct_layers(kind):
    layer, x, before = _primed(kind)
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    copies = [
        copy.deepcopy(layer),
        pickle.loads(pickle.dumps(layer)),
        torch.load(io.BytesIO(buffer.getvalue()), weights_only=False),
    ]
    for clone in copies:
        assert not clone._weight_cache, "a copy must not carry the dense weight"
        _assert_fresh(clone, x)
        with torch.no_grad():
            for _, p in _weight_parameters(clone):
                p.mul_(-0.5)
        _assert_fresh(clone, x, before)
    _assert_fresh(layer, x)
    torch.testing.assert_close(_infer(layer, x), before)


@pytest.mark.parametrize("kind", LAYERS)
def test_functional_call_uses_the_given_tensors(kind):
    layer, x, before = _primed(kind)
    torch.manual_seed(42)
    other = LAYERS[kind]().eval()
    values = dict(other.named_parameters())
    with torch.no_grad():
        y = torch.func.functional_call(layer, values, (x.to(before.real.dtype),))
    torch.testing.assert_close(y, _reference(other, x))
    torch.testing.assert_close(_infer(layer, x), before)  # back to its own tensors


@pytest.mark.parametrize("kind", LAYERS)
def test_broadcast_style_coalesced_copy_never_leaves_a_stale_weight(kind):
    # DDP and FSDP broadcasts write received values into the parameters' storage in place,
    # through flat buffers and views, without autograd seeing it.
    layer, x, before = _primed(kind)
    params = [p for _, p in _weight_parameters(layer)]
    flat = torch.cat([p.detach().reshape(-1) for p in params]) * -0.5
    offset = 0
    for p in params:
        p.data.view(-1).copy_(flat[offset : offset + p.numel()])
        offset += p.numel()
    _assert_fresh(layer, x, before)


def test_a_repeated_inference_call_reuses_the_weight(monkeypatch):
    layer, x, _ = _primed("MPOLinear")
    built = []
    original = tnlayers._layers.linear.layer_weight
    monkeypatch.setattr(
        tnlayers._layers.linear, "layer_weight", lambda *a: built.append(1) or original(*a)
    )
    for _ in range(3):
        _assert_fresh(layer, x)
    assert built == []  # primed: served from the checked cache every time
    with torch.no_grad():
        layer.tensors[layer.network.tensor_names[0]].mul_(2.0)
    _assert_fresh(layer, x)
    assert built == [1]


def test_training_calls_drop_the_inference_copy():
    layer, x, _ = _primed("TNLinear")
    layer(x).sum().backward()
    assert not layer._weight_cache


def test_frozen_layers_cache_with_grad_enabled_and_stay_correct():
    layer, x, _ = _primed("MPOLinear")
    layer.requires_grad_(False)
    x = x.clone().requires_grad_(True)
    y = layer(x)
    assert layer._weight_cache
    y.sum().backward()
    assert x.grad is not None
    with torch.no_grad():
        layer.tensors[layer.network.tensor_names[0]].mul_(-1.0)
    torch.testing.assert_close(layer(x).detach(), _reference(layer, x.detach()))


# ---------------------------------------------------------------------- the explicit scope
def test_cached_scope_builds_each_weight_once(monkeypatch):
    layer = LAYERS["MPOLinear"]().eval()
    x = _input(layer)
    built = []
    original = tnlayers._layers.linear.layer_weight
    monkeypatch.setattr(
        tnlayers._layers.linear, "layer_weight", lambda *a: built.append(1) or original(*a)
    )
    with torch.no_grad(), tnlayers.cached():
        for _ in range(4):
            torch.testing.assert_close(layer(x), _reference(layer, x))
        assert layer._weight_cache._scoped is not None
    assert built == [1]
    assert layer._weight_cache._scoped is None  # dropped when the scope closes


def test_cached_scope_back_propagates_through_every_use():
    torch.manual_seed(1)
    layer = LAYERS["MPOLinear"]()
    x = _input(layer)
    with tnlayers.cached():
        loss = layer(x).sum() + layer(2 * x).sum()  # one weight, used twice in one graph
    loss.backward()
    scoped = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    (layer(x).sum() + layer(2 * x).sum()).backward()
    for a, p in zip(scoped, layer.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad)


def test_cached_scope_never_serves_a_graph_free_weight_to_a_training_call():
    layer = LAYERS["MPOLinear"]()
    x = _input(layer)
    with tnlayers.cached():
        with torch.no_grad():
            layer(x)
        layer(x).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.tensors.values())


def test_cached_scope_after_closing_sees_new_values():
    layer = LAYERS["MPOLinear"]().eval()
    x = _input(layer)
    with torch.no_grad(), tnlayers.cached():
        before = layer(x)
    with torch.no_grad():
        layer.tensors[layer.network.tensor_names[0]].mul_(-1.0)
    _assert_fresh(layer, x, before)


def test_cached_scopes_nest():
    layer = LAYERS["MPOLinear"]().eval()
    x = _input(layer)
    with torch.no_grad(), tnlayers.cached():
        with tnlayers.cached():
            layer(x)
        assert layer._weight_cache._scoped is not None  # the outer scope is still open
    assert layer._weight_cache._scoped is None


def test_a_weight_cached_in_inference_mode_never_breaks_autograd():
    layer, x, _ = _primed("MPOLinear")
    layer.requires_grad_(False)
    with torch.inference_mode():
        first = layer(x)
        torch.testing.assert_close(layer(x), first)  # served from the cache inside the mode
    x = x.clone().requires_grad_(True)
    layer(x).sum().backward()  # a frozen layer, an input needing a gradient
    torch.testing.assert_close(x.grad, layer.to_dense().sum(0).expand_as(x).detach())


def test_cached_scope_serves_only_the_tensors_it_was_built_from():
    # Inside the scope nothing is compared, but swapped-in tensors are never served the
    # weight of the layer's own ones.
    layer = LAYERS["MPOLinear"]().eval()
    x = _input(layer)
    torch.manual_seed(42)
    other = LAYERS["MPOLinear"]().eval()
    with torch.no_grad(), tnlayers.cached():
        own = layer(x)
        swapped = torch.func.functional_call(layer, dict(other.named_parameters()), (x,))
        torch.testing.assert_close(swapped, _reference(other, x))
        torch.testing.assert_close(layer(x), own)
