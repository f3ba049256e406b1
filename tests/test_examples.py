"""Every example runs end to end in quick mode, so none can rot."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

EXAMPLES = sorted(
    p
    for p in (Path(__file__).parent.parent / "examples").glob("*.py")
    if not p.name.startswith("_")
)


def _run(script: Path, *args: str, timeout: float = 300, cwd: Path | None = None) -> str:
    """Run ``script`` with ``args`` in a fresh interpreter; its stdout, once it exited 0."""
    result = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_in_quick_mode(script, tmp_path):
    stdout = _run(script, "--quick", "--out", str(tmp_path))
    # Every example ends with its measured result: test accuracy, or perplexity for the
    # language model.
    assert "test accuracy" in stdout or "perplexity" in stdout
    written = [p for p in tmp_path.iterdir() if p.suffix == ".png"]
    assert written, "every example saves a plot"
    assert all(p.stat().st_size > 0 for p in written)


def test_there_are_examples():
    assert EXAMPLES


@pytest.mark.slow
def test_training_benchmark_runs_in_quick_mode():
    # The GPU run of the training-speed issue is this script with --device cuda: it must not rot.
    script = Path(__file__).parent.parent / "benchmarks" / "bench_training.py"
    stdout = _run(script, "--quick", cwd=script.parent)
    assert "training rows meet their goal" in stdout
    assert "batch 1, MPO 784→256 D=2" in stdout
    # Its quick Kronecker row runs the sequential strategy: the bytes-moved floor is printed.
    assert "sequential: moves" in stdout and "of their bytes-moved bound" in stdout
    # Every row is timed a second time as a whole training-loop step, with the optimizer.
    assert stdout.count("+ AdamW step") == stdout.count(" B=") and "with AdamW" in stdout


@pytest.mark.slow
def test_givens_benchmark_runs_in_quick_mode():
    # Part of the GPU run too; each row is followed by the cost model's predictions and errors.
    script = Path(__file__).parent.parent / "benchmarks" / "bench_givens.py"
    stdout = _run(script, "--quick", cwd=script.parent)
    assert stdout.count("chosen/best") == stdout.count("auto=") == 6
    assert "predicted layer" in stdout and "tiled" in stdout
    # The tiled strategy's floor (its stages, blocks prebuilt): every layout here has
    # neighbouring planes, so every row has it.
    assert len(re.findall(r"stage +[0-9.]+×", stdout)) == 6


@pytest.mark.slow
def test_kronecker_benchmark_runs_in_quick_mode():
    # Part of the GPU run (benchmarks/gpu.sh): both tables, the 2-GEMM comparison included.
    script = Path(__file__).parent.parent / "benchmarks" / "bench_kron.py"
    stdout = _run(script, "--quick", cwd=script.parent)
    assert "auto/best" in stdout and "tnlayers / 2-GEMM" in stdout


@pytest.mark.slow
def test_sequential_paths_benchmark_runs_in_quick_mode():
    script = Path(__file__).parent.parent / "benchmarks" / "bench_sequential_paths.py"
    stdout = _run(script, "--quick", cwd=script.parent)
    assert "6 random MPO chains" in stdout and "'sequential' forced, the model's path" in stdout
    assert "what 'auto' runs after timing" in stdout


@pytest.mark.slow
def test_the_recorded_benchmark_tables_still_parse_into_plots(tmp_path):
    script = Path(__file__).parent.parent / "benchmarks" / "plot_tables.py"
    stdout = _run(script, "--out", str(tmp_path), timeout=120)
    assert "(28 rows)" in stdout and "(18 rows)" in stdout
    assert all(
        (tmp_path / name).stat().st_size > 10_000
        for name in ("bench_layers.png", "bench_givens.png")
    )


@pytest.mark.parametrize("terms", [1, 3])
@pytest.mark.parametrize("kron_bias", [False, True])
def test_the_two_gemm_kronecker_baseline_is_the_structure_it_claims(monkeypatch, terms, kron_bias):
    # bench_training and bench_kron compare KronLinear with this hand-written form: it must be
    # y = x (Σ_k A_k ⊗ B_k)ᵀ + b, with b dense or the outer product of two vectors.
    monkeypatch.syspath_prepend(str(Path(__file__).parent.parent / "benchmarks"))
    from bench_kron import TwoGemmKron

    torch.manual_seed(0)
    (p1, p2), (q1, q2) = (3, 4), (2, 5)
    baseline = TwoGemmKron((p1, p2), (q1, q2), terms, kron_bias=kron_bias).double()
    first, second = baseline.first.detach(), baseline.second.detach()
    weight = sum(
        torch.kron(first[k * p1 : (k + 1) * p1].T, second[:, k * q2 : (k + 1) * q2].T)
        for k in range(terms)
    )
    if kron_bias:
        bias = torch.kron(baseline.bias_first.detach(), baseline.bias_second.detach())
    else:
        bias = baseline.bias.detach()
    x = torch.randn(7, p1 * p2, dtype=torch.float64)
    torch.testing.assert_close(baseline(x), x @ weight.T + bias, rtol=1e-12, atol=1e-12)
