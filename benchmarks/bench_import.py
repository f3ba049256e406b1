"""Import time: ``import tnlayers`` against ``import torch``, side by side, in fresh processes.

Goal: ``import tnlayers`` ≤ ``import torch`` + 0.4 s, and ``torch._dynamo`` not imported (it costs
about a second and only ``torch.compile`` needs it).

    python benchmarks/bench_import.py   # ~30 s
"""

from __future__ import annotations

import statistics
import subprocess
import sys

PROBE = """
import sys, time
start = time.perf_counter()
import {module}
print(time.perf_counter() - start, any(m.startswith("torch._dynamo") for m in sys.modules))
"""


def measure(module: str) -> tuple[float, bool]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, dynamo = done.stdout.split()
    return float(seconds), dynamo == "True"


def main() -> None:
    runs = 7
    times: dict[str, list[float]] = {"torch": [], "tnlayers": []}
    dynamo = False
    for _ in range(runs):  # interleaved, so that drift hits both alike
        for module in times:
            seconds, loaded = measure(module)
            times[module].append(seconds)
            dynamo |= loaded and module == "tnlayers"
    torch_s, tnl_s = (statistics.median(times[m]) for m in ("torch", "tnlayers"))
    print(f"import torch     {torch_s:.2f} s (median of {runs})")
    print(f"import tnlayers  {tnl_s:.2f} s  (+{tnl_s - torch_s:.2f} s over torch; goal ≤ +0.40 s)")
    print(f"torch._dynamo imported by tnlayers: {dynamo}")


if __name__ == "__main__":
    main()
