"""Shared test configuration: deterministic hypothesis profile, seeded torch."""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("TNLAYERS_HYPOTHESIS_EXAMPLES", "40")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)
