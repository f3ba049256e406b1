"""compress and restore on randomly built models (hypothesis): the invariants that must always hold.

Random stacks of Linear / Conv1d layers, some used twice, some with tied weights, some frozen,
compressed with a random method and size. Whatever is drawn: the input model is untouched,
every occurrence of a replaced module is the same new module, frozen layers stay frozen, the
report's counts are the model's, and a restored skeleton reproduces the outputs exactly.
"""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import tnlayers

WIDTH = 12


@st.composite
def models(draw: st.DrawFn) -> tuple[nn.Module, dict]:
    torch.manual_seed(draw(st.integers(0, 10_000)))
    count = draw(st.integers(1, 4))
    layers: list[nn.Module] = []
    for _ in range(count):
        if draw(st.booleans()):
            layers.append(nn.Linear(WIDTH, WIDTH, bias=draw(st.booleans())))
        else:  # a length-preserving 1-D convolution over the features as "length"
            layers.append(_Conv(draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 3]))))
    if draw(st.booleans()) and isinstance(layers[0], nn.Linear):
        layers.append(layers[0])  # the same module used twice
    if draw(st.booleans()) and sum(isinstance(m, nn.Linear) for m in layers) >= 2:
        linears = [m for m in layers if isinstance(m, nn.Linear)]
        if linears[-1] is not linears[0]:
            linears[-1].weight = linears[0].weight  # tied
    if draw(st.booleans()):
        layers[-1].requires_grad_(False)
    body = [m for layer in layers for m in (layer, nn.Tanh())]
    method = draw(st.sampled_from(["low_rank", "mpo", "kronecker", "auto", "budget"]))
    settings = {
        "low_rank": {"method": "low_rank", "rank": draw(st.integers(1, 6))},
        "mpo": {"method": "mpo", "max_bond": draw(st.integers(1, 4))},
        "kronecker": {"method": "kronecker", "terms": draw(st.integers(1, 3))},
        "auto": {"method": "auto", "param_ratio": draw(st.sampled_from([0.4, 0.7]))},
        "budget": {"method": "low_rank", "total_param_ratio": 0.9},
    }[method]
    return nn.Sequential(*body).double(), settings


class _Conv(nn.Module):
    """A Conv1d seen by compress, wrapped to map (batch, WIDTH) to (batch, WIDTH)."""

    def __init__(self, groups: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 2, kernel, padding=kernel // 2, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.reshape(x.shape[0], 2, WIDTH // 2)).reshape(x.shape[0], WIDTH)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@given(models())
def test_compress_and_restore_keep_every_invariant(drawn) -> None:
    model, settings = drawn
    before = _snapshot(model)
    kinds = [type(m) for m in model.modules()]
    try:
        new, report = tnlayers.compress(model, **settings)
    except tnlayers.OptionError as error:
        # Allowed only with the reasons spelled out, and the model untouched.
        assert "no layer was compressed" in str(error) or "no allocation" in str(error)
        new = report = None
    assert [type(m) for m in model.modules()] == kinds
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    if report is None:
        return
    occurrences = {}
    for path, module in new.named_modules(remove_duplicate=False):
        occurrences.setdefault(path, module)
    for layer in report.layers:
        replaced = {id(occurrences[p]) for p in layer.paths}
        assert len(replaced) == 1  # every occurrence is the one new module
        (module,) = {occurrences[p] for p in layer.paths}
        assert module.num_params == layer.params_after
        original = model.get_submodule(layer.paths[0])
        if not original.weight.requires_grad:  # a frozen layer's replacement stays frozen
            weights = [p for n, p in module.named_parameters() if "bias" not in n]
            assert weights and not any(p.requires_grad for p in weights)
    if report.budget is not None:
        assert report.budget.model_params_after == sum(p.numel() for p in new.parameters())
        assert report.budget.achieved_ratio <= 0.9
    x = torch.randn(3, WIDTH, dtype=torch.float64)
    skeleton = tnlayers.restore(_fresh(model), report.to_json())
    skeleton.load_state_dict(new.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(skeleton(x), new(x), rtol=0, atol=0)


def _fresh(model: nn.Module) -> nn.Module:
    """A model of the same architecture (sharing and ties included) with other values."""
    import copy

    fresh = copy.deepcopy(model)
    with torch.no_grad():
        for p in fresh.parameters():
            p.normal_()
    return fresh
