"""Declare a custom tensor network, read its cost report, and train it on bundled MNIST.

The network is a three-tensor "tree": two input tensors each take one 28-pixel axis of the image
and meet in a hub tensor that holds the output legs. Run with ``--quick`` for a few steps.

    python examples/custom_network.py [--quick] [--steps 300]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

import tnlayers
from tnlayers.data import load_mnist_5k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps on tiny data (CI)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(""))
    args = parser.parse_args()
    steps = 5 if args.quick else args.steps

    # rows (28) -> r (12), columns (28) -> c (12); hub maps (r, c) to two output legs 16 x 16.
    net = tnlayers.Network(
        {
            "rows": {"i_row": 28, "r": 12},
            "cols": {"i_col": 28, "c": 12},
            "hub": {"r": 12, "c": 12, "j1": 16, "j2": 16},
        },
        inputs=["i_row", "i_col"],
        outputs=["j1", "j2"],
    )
    print(net)
    print(tnlayers.cost(net, batch=100))
    args.out.mkdir(parents=True, exist_ok=True)
    tnlayers.draw(net, args.out / "network.png")

    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in load_mnist_5k())
    if args.quick:
        x_train, y_train, x_test, y_test = x_train[:300], y_train[:300], x_test[:100], y_test[:100]
    torch.manual_seed(0)
    model = nn.Sequential(tnlayers.TNLinear(net), nn.ReLU(), nn.Linear(256, 10))
    print(tnlayers.summary(model, batch=100))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    epochs = -(-steps * 100 // len(x_train))  # enough passes for `steps` minibatches of 100
    tnlayers.training.train(
        model, x_train, y_train, opt, epochs=epochs, batch=100, max_steps=steps,
        generator=torch.Generator().manual_seed(0), progress=True,
    )  # fmt: skip
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    print(
        f"test accuracy after {steps} steps: {accuracy:.2%} "
        f"({net.num_params:,} network parameters instead of {net.dense_params:,})"
    )


if __name__ == "__main__":
    main()
