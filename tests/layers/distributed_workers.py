"""Distributed test jobs, one process per rank (started by ``distributed_harness.run_job``).

``python distributed_workers.py JOB RANK WORLD DIR``: meets the other ranks through a TCP store on
127.0.0.1 (rank 0 publishes its port in DIR), runs JOB and saves its result in
``DIR/result-RANK.pt``.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

import tnlayers

TIMEOUT = timedelta(seconds=60)


def _connect(rank: int, world: int, directory: Path) -> None:
    port_file = directory / "port"
    if rank == 0:
        store = dist.TCPStore(
            "127.0.0.1", 0, world, is_master=True, timeout=TIMEOUT, wait_for_workers=False
        )
        partial = directory / "port.partial"
        partial.write_text(str(store.port))
        partial.rename(port_file)  # atomic: the others never read half a number
    else:
        deadline = time.monotonic() + TIMEOUT.total_seconds()
        while not port_file.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("rank 0 never published its store's port")
            time.sleep(0.02)
        port = int(port_file.read_text())
        store = dist.TCPStore("127.0.0.1", port, world, is_master=False, timeout=TIMEOUT)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world, timeout=TIMEOUT)


# ---------------------------------------------------------------------- shared with the tests
def ddp_model() -> nn.Module:
    torch.manual_seed(123)
    return nn.Sequential(
        tnlayers.TNLinear(tnlayers.mpo((4, 4), (2, 4), 2)), nn.Tanh(), nn.Linear(8, 3)
    )


def ddp_data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    return torch.randn(16, 16, generator=generator), torch.randint(0, 3, (16,), generator=generator)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 3) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def compressed_model() -> nn.Module:
    """A trained-looking dense MLP after ``compress``: MPO, BTT and low-rank layers."""
    torch.manual_seed(321)
    dense = nn.Sequential(
        nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 3)
    )  # fmt: skip
    small, _ = tnlayers.compress(dense, "mpo", max_bond=2, names=["0"])
    small, _ = tnlayers.compress(small, network={"2": lambda i, o: tnlayers.btt(i, o, 1)})
    small, _ = tnlayers.compress(small, rank=2, names=["4"])
    assert all(isinstance(small[k], tnlayers.TNLinear) for k in (0, 2, 4))
    return small


def cache_layers() -> dict[str, nn.Module]:
    """One layer of each caching kind, forced to the materialize strategy (the cached path)."""
    return {
        "TNLinear": tnlayers.TNLinear(tnlayers.mpo((4, 4), (4, 4), 3), strategy="materialize"),
        "MPOLinear": tnlayers.MPOLinear(16, 12, bond=3, strategy="materialize"),
        "KronLinear": tnlayers.KronLinear(16, 16, terms=2, strategy="materialize"),
        "QubitCircuitLinear": tnlayers.QubitCircuitLinear(
            tnlayers.QubitCircuit(3).ry(0).ry(1).cnot(0, 1).rzz(1, 2), strategy="materialize"
        ),
    }


def dense_reference(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x @ to_dense().T + bias`` (and the Kronecker bias), without the layer's forward."""
    with torch.no_grad():
        weight = layer.to_dense()
        y = x.to(weight.dtype) @ weight.T
        if getattr(layer, "bias", None) is not None:
            y = y + layer.bias
        if isinstance(layer, tnlayers.KronLinear) and layer.kron_bias() is not None:
            y = y + layer.kron_bias()
        return y


# ---------------------------------------------------------------------- jobs
def _train_on_shard(model: nn.Module, rank: int, world: int) -> None:
    """Train on this rank's equal share of ``ddp_data`` (the average of the shards' losses is
    the one-process loss)."""
    x, y = ddp_data()
    rows = x.shape[0] // world
    shard = slice(rank * rows, (rank + 1) * rows)
    train(model, x[shard], y[shard])


def job_ddp_train(rank: int, world: int) -> object:
    model = nn.parallel.DistributedDataParallel(ddp_model())
    _train_on_shard(model, rank, world)
    return model.module.state_dict()


def job_ddp_broadcast_cache(rank: int, world: int) -> object:
    """Ranks start from different values and prime their caches; DDP's broadcast of rank 0's
    values (in place, no autograd) must reach every rank's next inference call."""
    torch.manual_seed(100 + rank)
    errors, outputs = {}, {}
    for name, layer in cache_layers().items():
        layer.eval()
        x = torch.randn(8, layer.in_features, generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            layer(x)  # primes the cache with this rank's own values
        wrapped = nn.parallel.DistributedDataParallel(layer)
        with torch.no_grad():
            y = wrapped.module(x)
        errors[name] = float((y - dense_reference(layer, x)).abs().max())
        outputs[name] = y
    return {"errors": errors, "outputs": outputs}


def job_fsdp_cache(rank: int, world: int) -> object:
    """Under FSDP (``fully_shard``) parameters are sharded, gathered for each forward and
    stepped shard by shard: inference after a step must see the new values on every rank."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    torch.manual_seed(200)  # fully_shard does not broadcast: every rank starts alike
    layer = tnlayers.MPOLinear(16, 12, bond=3, strategy="materialize")
    twin = tnlayers.MPOLinear(16, 12, bond=3, strategy="materialize")
    fully_shard(layer, mesh=init_device_mesh("cpu", (world,)))
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(5))
    opt = torch.optim.AdamW(layer.parameters(), lr=0.1)
    errors = []
    for _ in range(3):
        layer.eval()
        with torch.no_grad():
            y = layer(x)
            y_again = layer(x)  # served from the cache, if anything
        layer.reshard()  # the root stays unsharded after forward; read the shards and gather
        full = {name: p.full_tensor() for name, p in layer.named_parameters()}
        twin.load_state_dict(full)
        errors.append(float((y - dense_reference(twin, x)).abs().max()))
        errors.append(float((y_again - y).abs().max()))
        layer.train()
        layer(x).pow(2).sum().backward()
        opt.step()
        opt.zero_grad()
    return {"errors": errors, "output": y}


def job_ddp_train_compressed(rank: int, world: int) -> object:
    model = nn.parallel.DistributedDataParallel(compressed_model())
    _train_on_shard(model, rank, world)
    return model.module.state_dict()


def job_fsdp_train(rank: int, world: int) -> object:
    """FSDP2 (``fully_shard``) on every tensor-network layer and the root, trained on this
    rank's half of the data; returns the gathered parameters."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    model = compressed_model()  # seeded: every rank starts alike (fully_shard broadcasts nothing)
    mesh = init_device_mesh("cpu", (world,))
    for layer in model:
        if isinstance(layer, tnlayers.TNLinear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    _train_on_shard(model, rank, world)
    model.reshard()
    return {name: p.full_tensor() for name, p in model.named_parameters()}


JOBS = {
    "ddp_train": job_ddp_train,
    "ddp_train_compressed": job_ddp_train_compressed,
    "fsdp_train": job_fsdp_train,
    "ddp_broadcast_cache": job_ddp_broadcast_cache,
    "fsdp_cache": job_fsdp_cache,
}


def main(job: str, rank: int, world: int, directory: Path) -> None:
    torch.set_num_threads(1)
    _connect(rank, world, directory)
    try:
        result = JOBS[job](rank, world)
        torch.save(result, directory / f"result-{rank}.pt")
        dist.barrier()  # leave together: tearing gloo down under a working peer can hang it
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
    # Leave without C++ static destructors: one of gloo's threads, still joinable at exit, made
    # a rank abort ("terminate called without an active exception") after its result was saved.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
