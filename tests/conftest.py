"""Shared test configuration: deterministic hypothesis profile, seeded torch."""

import os

# One inductor compile thread: its worker pool is slow to start and can stall on 2 cores.
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")

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
