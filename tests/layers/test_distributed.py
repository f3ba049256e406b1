"""DDP and FSDP with tensor-network layers, each rank a plain process (see distributed_harness)."""

import os

import pytest
import torch

from .distributed_harness import run_job
from .distributed_workers import compressed_model, ddp_data, ddp_model, train

# TNLAYERS_DISTRIBUTED_REPEAT=20 runs each job 20 times (to show the suite never hangs).
REPEAT = int(os.environ.get("TNLAYERS_DISTRIBUTED_REPEAT", "1"))
pytestmark = [pytest.mark.slow, pytest.mark.parametrize("attempt", range(REPEAT))]


def test_ddp_two_processes_match_single_process(attempt):
    distributed = run_job("ddp_train")[0]
    single = ddp_model()
    x, y = ddp_data()
    train(single, x, y)  # mean loss over 16 rows = DDP's average of two 8-row means
    for key, value in single.state_dict().items():
        torch.testing.assert_close(distributed[key], value, rtol=1e-5, atol=1e-6)


def test_ddp_broadcast_reaches_every_cached_weight(attempt):
    results = run_job("ddp_broadcast_cache")
    for result in results:
        for name, error in result["errors"].items():
            assert error < 1e-5, f"{name}: stale weight after DDP's broadcast ({error:.3g})"
    for name, y in results[0]["outputs"].items():  # every rank now computes rank 0's layer
        torch.testing.assert_close(results[1]["outputs"][name], y)


def test_fsdp_steps_reach_every_cached_weight(attempt):
    results = run_job("fsdp_cache")
    for result in results:
        assert max(result["errors"]) < 1e-5, result["errors"]
    torch.testing.assert_close(results[0]["output"], results[1]["output"])


def test_fsdp2_training_matches_single_process(attempt):
    results = run_job("fsdp_train")
    single = compressed_model()
    x, y = ddp_data()
    train(single, x, y)
    expected = dict(single.named_parameters())
    start = dict(compressed_model().named_parameters())
    assert any(not torch.equal(start[n], p) for n, p in expected.items())  # training moved them
    for result in results:  # every rank gathers the same parameters
        assert result.keys() == expected.keys()
        for name, value in result.items():
            torch.testing.assert_close(value, expected[name].detach(), rtol=1e-5, atol=1e-6)


def test_ddp_trains_a_compressed_model_like_one_process(attempt):
    distributed = run_job("ddp_train_compressed")[0]
    single = compressed_model()
    x, y = ddp_data()
    train(single, x, y)
    for key, value in single.state_dict().items():
        torch.testing.assert_close(distributed[key], value, rtol=1e-5, atol=1e-6)
