"""Import time: ``import tnlayers`` against ``import torch``, side by side, in fresh processes.

Goals: ``import tnlayers`` well under ``import torch`` (torch loads on the first use of a layer;
declaring and costing networks, and the command line, never need it), ``import tnlayers`` plus a
first layer ≤ ``import torch`` + 0.4 s, ``torch._dynamo`` not imported (it costs about a second
and only ``torch.compile`` needs it), and ``tnlayers --help`` under 0.5 s.

    python benchmarks/bench_import.py   # ~30 s
"""

from __future__ import annotations

import statistics
import subprocess
import sys

PROBE = """
import sys, time
start = time.perf_counter()
{statement}
print(time.perf_counter() - start, any(m.startswith("torch._dynamo") for m in sys.modules))
"""
STATEMENTS = {
    "import torch": "import torch",
    "import tnlayers": "import tnlayers",
    "import tnlayers + a first layer": (
        "import tnlayers; tnlayers.TNLinear(tnlayers.mpo(16, 16, 2))"
    ),
    "tnlayers --help": (
        "from tnlayers.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    ),
}


def measure(statement: str) -> tuple[float, bool]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(statement=statement)],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, dynamo = done.stdout.split()[-2:]
    return float(seconds), dynamo == "True"


def main() -> None:
    runs = 7
    times: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    dynamo = False
    for _ in range(runs):  # interleaved, so that drift hits all alike
        for name, statement in STATEMENTS.items():
            seconds, loaded = measure(statement)
            times[name].append(seconds)
            dynamo |= loaded and "tnlayers" in name
    median = {name: statistics.median(values) for name, values in times.items()}
    torch_s = median["import torch"]
    for name, seconds in median.items():
        extra = "" if name == "import torch" else f"  ({seconds - torch_s:+.2f} s against torch)"
        print(f"{name:<32} {seconds:.2f} s{extra}")
    print(f"(medians of {runs} fresh processes) torch._dynamo imported by tnlayers: {dynamo}")


if __name__ == "__main__":
    main()
