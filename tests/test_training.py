"""The one training loop: train (shuffling, steps, schedules, callbacks, divergence)."""

from __future__ import annotations

import math

import torch
from torch import nn

from tnlayers.training import train


def _data(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=gen)
    return x, (x[:, 0] > 0).long()


def test_train_counts_steps_calls_back_and_learns():
    x, y = _data()
    model = nn.Linear(6, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    seen: list[int] = []
    result = train(model, x, y, opt, epochs=5, batch=16, on_epoch=seen.append)
    assert seen == [1, 2, 3, 4, 5]
    assert result.steps == 5 * math.ceil(40 / 16) and not result.diverged
    assert len(result.losses) == 5 and result.losses[-1] < result.losses[0]


def test_train_is_the_plain_loop_it_replaces():
    x, y = _data()
    torch.manual_seed(1)
    a = nn.Linear(6, 2)
    b = nn.Linear(6, 2)
    b.load_state_dict(a.state_dict())
    opt_a = torch.optim.Adam(a.parameters(), lr=0.01)
    train(a, x, y, opt_a, epochs=3, batch=7, generator=torch.Generator().manual_seed(3))
    opt_b = torch.optim.Adam(b.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), 7):
            idx = order[start : start + 7]
            opt_b.zero_grad()
            nn.functional.cross_entropy(b(x[idx]), y[idx]).backward()
            opt_b.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_train_stops_at_max_steps_and_steps_the_scheduler():
    x, y = _data()
    model = nn.Linear(6, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5**step)
    result = train(model, x, y, opt, epochs=10, batch=8, max_steps=7, scheduler=schedule)
    assert result.steps == 7 and len(result.losses) == 1  # one full epoch of 5, then 2 steps
    assert opt.param_groups[0]["lr"] == 0.5**7


def test_train_stops_on_a_non_finite_loss_before_stepping():
    x, y = _data()
    model = nn.Linear(6, 2)
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    before = [p.clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    result = train(model, x, y, opt, epochs=3, batch=8)
    assert result.diverged and result.steps == 0 and result.losses == ()
    for p, q in zip(model.parameters(), before, strict=True):
        assert torch.equal(p.nan_to_num(), q.nan_to_num())
