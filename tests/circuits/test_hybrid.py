"""Chen et al.'s hybrid models, parameter attacks, data noise and the classification report."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

import tnlayers
from tnlayers._circuits.givens_exec import rotation_blocks
from tnlayers.circuits import Noise, ParameterAttack
from tnlayers.models import (
    QDCNN,
    QDFNN,
    QRCNN,
    QRFNN,
    TQCNN,
    TQFNN,
    BaselineCNN,
    BaselineMLP,
    CircuitStack,
)

F64 = torch.float64


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _dense(stack: CircuitStack) -> list[torch.Tensor]:
    return [c.to_dense().detach() for c in stack.circuits]


def test_residual_stack_is_equation_7_by_hand() -> None:
    torch.manual_seed(0)
    stack = CircuitStack(5, 3, "residual").double()
    with torch.no_grad():
        stack.lambdas.copy_(torch.tensor([0.3, -1.2, 2.0]))
    psi0 = torch.randn(4, 5, dtype=F64)
    u0, u1, u2 = _dense(stack)
    lam = stack.lambdas.detach()
    psi1 = psi0 @ u0.T + lam[0] * psi0
    psi2 = psi1 @ u1.T + lam[1] * psi1
    psi3 = psi2 @ u2.T + lam[2] * psi2
    assert torch.allclose(stack(psi0), psi3, atol=1e-12)


def test_dense_stack_is_equation_8_by_hand() -> None:
    torch.manual_seed(1)
    stack = CircuitStack(4, 3, "dense").double()
    assert stack.lambdas.numel() == 3 * 4 // 2
    assert stack.dense_lambda(2, 0).item() == pytest.approx(0.5)  # λ_{l,j} starts at 1/l
    with torch.no_grad():
        stack.lambdas.copy_(torch.randn(6))
    lam = stack.dense_lambda
    psi0 = torch.randn(3, 4, dtype=F64)
    u0, u1, u2 = _dense(stack)
    psi1 = psi0 @ u0.T + lam(1, 0) * psi0
    psi2 = psi1 @ u1.T + lam(2, 0) * psi0 + lam(2, 1) * psi1
    psi3 = psi2 @ u2.T + lam(3, 0) * psi0 + lam(3, 1) * psi1 + lam(3, 2) * psi2
    assert torch.allclose(stack(psi0), psi3.detach(), atol=1e-12)


def test_no_connection_stack_and_activation() -> None:
    stack = CircuitStack(4, 2, "none", activation=torch.tanh).double()
    psi0 = torch.randn(3, 4, dtype=F64)
    u0, u1 = _dense(stack)
    assert torch.allclose(stack(psi0), torch.tanh(psi0 @ u0.T) @ u1.T, atol=1e-12)
    assert stack.lambdas is None


@pytest.mark.parametrize(
    ("cls", "lambdas"), [(QRFNN, 2), (QDFNN, 3), (TQFNN, 0)], ids=["QRFNN", "QDFNN", "TQFNN"]
)
def test_iris_model_parameter_counts(cls: type, lambdas: int) -> None:
    model = cls(4, 3)  # n = 4, L = 2: 2 · (2n − 3) angles, then Linear(4 → 3)
    assert _count(model) == 2 * 5 + lambdas + 4 * 3 + 3
    assert isinstance(model.input, nn.Identity)  # iris features are encoded directly
    wide = cls(64, 4, 16, layers=3)  # input layer 64 → 16 when d ≠ n
    assert _count(wide) == 64 * 16 + 16 + 3 * 29 + {2: 3, 3: 6, 0: 0}[lambdas] + 16 * 4 + 4


@pytest.mark.parametrize("cls", [QRFNN, QDFNN, TQFNN])
def test_without_activations_logits_are_affine_in_the_normalised_input(cls: type) -> None:
    """With Chen et al.'s encoding and output layer these models are linear classifiers on
    x/‖x‖ (checked exactly)."""
    torch.manual_seed(2)
    model = cls(6, 3).double()
    with torch.no_grad():
        if model.stack.lambdas is not None:
            model.stack.lambdas.uniform_(-2, 2)
    bias = model.output.bias.detach()
    basis = model(torch.eye(6, dtype=F64)).detach() - bias  # columns of W·M
    x = torch.randn(10, 6, dtype=F64) * 3
    x_hat = x / x.norm(dim=1, keepdim=True)
    assert torch.allclose(model(x), x_hat @ basis + bias, atol=1e-10)


def test_conv_models_shapes_and_counts() -> None:
    x = torch.randn(5, 1, 8, 8)
    for cls in (QRCNN, QDCNN, TQCNN, BaselineCNN):
        assert cls(1, 8, 4)(x).shape == (5, 4)
    angles = sum(p.numel() for n, p in QRCNN(1, 28, 4).named_parameters() if "angles" in n)
    assert angles == 2 * 29  # n = 16 (4 qubits): 2n − 3 = 29 per layer, our CPU-scale protocol
    assert BaselineMLP(4, 3)(torch.randn(2, 4)).shape == (2, 3)
    assert _count(BaselineMLP(4, 3)) == 2 * (16 + 4) + 15


# ---------------------------------------------------------------------- noise and attacks
@pytest.mark.parametrize("noise", tnlayers.circuits.NOISE_VARIANTS, ids=lambda n: n.name)
def test_noise_has_its_stated_mean_and_variance(noise: Noise) -> None:
    noise = dataclasses.replace(noise, scale=0.7)
    draws = noise.sample((400_000,), dtype=F64, generator=torch.Generator().manual_seed(0))
    se = math.sqrt(noise.variance / draws.numel())
    assert abs(draws.mean().item() - noise.mean) < 5 * se
    assert draws.var().item() == pytest.approx(noise.variance, rel=0.02)
    assert (noise.mean == 0) == noise.symmetric
    if not noise.symmetric and noise.kind != "mixed":
        assert draws.min() >= 0


def _angles(model: nn.Module, i: int) -> torch.Tensor:
    return model.stack.circuits[i].angles


@pytest.mark.parametrize("kind", tnlayers.circuits.NOISE_VARIANTS, ids=lambda n: n.name)
def test_form_1_transient_changes_only_the_targeted_angles(kind: Noise) -> None:
    model = QRFNN(8, 3).double()
    noise = dataclasses.replace(kind, scale=0.3)
    clean = [_angles(model, i).detach().clone() for i in range(2)]
    diffs = []
    with ParameterAttack(model, ["stack.circuits.1"], form=1, noise=noise) as attack:
        assert list(attack.parameters()) == ["stack.circuits.1.angles"]
        for _ in range(2000):
            assert torch.equal(_angles(model, 0), clean[0])
            diffs.append(_angles(model, 1).detach() - clean[1])
        model.eval()  # phase "train": no noise in eval mode
        assert torch.equal(_angles(model, 1), clean[1])
        model.train()
    eps = torch.stack(diffs)
    assert eps.mean().item() == pytest.approx(noise.mean, abs=0.01)
    assert eps.var().item() == pytest.approx(noise.variance, rel=0.05)
    assert torch.equal(_angles(model, 1), clean[1])  # removed
    assert sorted(model.state_dict()) == sorted(QRFNN(8, 3).state_dict())


def test_form_1_on_a_classical_block_perturbs_only_its_weight() -> None:
    model = BaselineMLP(6, 3)
    clean = {k: v.clone() for k, v in model.state_dict().items()}
    noise = Noise("uniform", symmetric=True, scale=0.5)
    with ParameterAttack(model, ["hidden.0"], form=1, noise=noise, phase="both"):
        w0, b0, w1 = model.hidden[0][0].weight, model.hidden[0][0].bias, model.hidden[1][0].weight
        assert not torch.equal(w0, clean["hidden.0.0.weight"])
        assert (w0 - clean["hidden.0.0.weight"]).abs().max() <= 0.5
        assert torch.equal(b0, clean["hidden.0.0.bias"])
        assert torch.equal(w1, clean["hidden.1.0.weight"])


@pytest.mark.parametrize("kind", tnlayers.circuits.NOISE_VARIANTS, ids=lambda n: n.name)
def test_form_2_on_givens_gates_adds_noise_to_every_block_entry(kind: Noise) -> None:
    model = QDFNN(5, 3).double()
    layer = model.stack.circuits[0]
    noise = dataclasses.replace(kind, scale=0.2)
    clean_blocks = rotation_blocks(layer.angles.detach())
    with ParameterAttack(model, ["stack.circuits.0"], form=2, noise=noise):
        eps = torch.stack([layer.gate_blocks().detach() - clean_blocks for _ in range(3000)])
        u = layer.to_dense().detach()
        assert not torch.allclose(u.T @ u, torch.eye(5, dtype=F64), atol=1e-3)  # not orthogonal
        assert model.stack.circuits[1].block_transform is None
    assert eps.mean().item() == pytest.approx(noise.mean, abs=0.01)
    assert eps.var().item() == pytest.approx(noise.variance, rel=0.05)
    assert layer.block_transform is None
    assert torch.equal(layer.gate_blocks().detach(), clean_blocks)


def test_form_2_on_a_classical_block_adds_noise_after_the_activation() -> None:
    torch.manual_seed(0)
    model = BaselineMLP(4, 3).double()
    x = torch.randn(64, 4, dtype=F64)
    seen = []
    model.hidden[1].register_forward_hook(lambda m, a, out: seen.append(a[0].detach()))
    model(x)
    clean = seen.pop()
    noise = Noise("gaussian", symmetric=False, scale=0.4)
    diffs = []
    with ParameterAttack(model, ["hidden.0"], form=2, noise=noise):
        for _ in range(300):
            model(x)
            diffs.append(seen.pop() - clean)
    eps = torch.stack(diffs)
    assert eps.mean().item() == pytest.approx(noise.mean, abs=0.01)
    assert eps.var().item() == pytest.approx(noise.variance, rel=0.05)


def test_persistent_attack_accumulates_after_optimiser_steps() -> None:
    model = QRFNN(6, 3).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    noise = Noise("gaussian", symmetric=False, scale=0.1)
    start = [_angles(model, i).detach().clone() for i in range(2)]
    attack = ParameterAttack(model, ["stack.circuits.0"], form=1, noise=noise, timing="persistent")
    attack.attach(optimizer)
    for _ in range(400):
        optimizer.zero_grad()
        model(torch.randn(2, 6, dtype=F64)).sum().backward()
        optimizer.step()
    drift = _angles(model, 0).detach() - start[0]
    assert torch.equal(_angles(model, 1), start[1])
    assert drift.mean().item() == pytest.approx(400 * noise.mean, rel=0.1)
    attack.remove()
    before = _angles(model, 0).detach().clone()
    optimizer.step()
    assert torch.equal(_angles(model, 0), before)


def test_attack_errors_are_clear() -> None:
    model = QRFNN(4, 3)
    noise = Noise()
    with pytest.raises(tnlayers.OptionError, match=r"no submodule named \['stack.circuit.0'\]"):
        ParameterAttack(model, ["stack.circuit.0"], form=1, noise=noise)
    with pytest.raises(tnlayers.OptionError, match="form 2 noise"):
        ParameterAttack(model, ["stack.circuits.0"], form=2, noise=noise, timing="persistent")
    with pytest.raises(tnlayers.OptionError, match="attack form"):
        ParameterAttack(model, ["stack.circuits.0"], form=3, noise=noise)  # type: ignore[arg-type]
    with pytest.raises(tnlayers.OptionError, match="noise kind"):
        Noise("poisson")  # type: ignore[arg-type]


def test_corrupt_hits_the_stated_fractions() -> None:
    x = torch.zeros(2000, 50)
    noisy = tnlayers.circuits.corrupt(
        x,
        Noise("uniform", symmetric=False, scale=1.0),
        sample_fraction=0.5,
        feature_fraction=0.2,
        generator=torch.Generator().manual_seed(0),
    )
    changed = noisy != 0
    assert torch.equal(x, torch.zeros(2000, 50))
    assert changed.float().mean().item() == pytest.approx(0.1, abs=0.01)
    assert changed.any(1).float().mean().item() == pytest.approx(0.5, abs=0.04)


# ---------------------------------------------------------------------- classification report
def test_report_of_a_perfect_and_of_a_diverged_classifier() -> None:
    y = torch.tensor([0, 1, 2, 3] * 5)
    perfect = nn.Module()
    perfect.forward = lambda x: nn.functional.one_hot(x.long(), 4).double() * 10  # type: ignore[method-assign]
    report = tnlayers.analysis.classification_report(perfect, y, y)
    assert report.accuracy == 1 and report.f1 == (1.0,) * 4
    assert report.pr_auc == pytest.approx(1) and report.roc_auc == pytest.approx(1)
    assert not report.diverged and report.loss < 1e-3

    broken = nn.Linear(4, 4)
    with torch.no_grad():
        broken.weight.fill_(math.nan)
    x = torch.randn(20, 4)
    report = tnlayers.analysis.classification_report(broken, x, y)
    assert report.diverged and math.isnan(report.loss) and math.isnan(report.roc_auc)
    assert report.accuracy == pytest.approx(0.25)
    assert "diverged" in str(report)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["QDFNN", "QRFNN"])
def test_models_with_circuits_compile_whole(name):
    model = getattr(tnlayers.models, name)(4, 3).double()
    x = torch.randn(5, 4, dtype=torch.float64)
    compiled = torch.compile(model, fullgraph=True)
    y = compiled(x)
    torch.testing.assert_close(y, model(x))
    y.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x).sum().backward()
    for got, want in zip(grads, (p.grad for p in model.parameters()), strict=True):
        torch.testing.assert_close(got, want)
