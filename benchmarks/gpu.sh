#!/usr/bin/env bash
# The GPU run of the training-speed issue, in one command (about 5 minutes on an H100/H200):
#   bash benchmarks/gpu.sh > benchmarks/gpu-results.txt 2>&1
# 1. the device tests (tests/layers/test_gpu.py: every family equals its CPU twin in float64,
#    the cache after a fused step, bf16 autocast, torch.compile), then the fast CPU suite's
#    layer tests on the same machine; 2. the training-goal table in fp32 and bf16 (autocast),
#    against nn.Linear at the same precision; 3. Kronecker and Givens tables on the device;
#    4. whether "auto"'s check of grouped sequential paths matters there (random MPO chains).
# Needs a virtual environment with a CUDA build of torch and `pip install -e ".[dev]"`.
set -euo pipefail
cd "$(dirname "$0")/.."
python - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device: this script is for a GPU machine"
print("#", torch.cuda.get_device_name(), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
PY
python -m pytest -q -p no:cacheprovider tests/layers/test_gpu.py
python -m pytest -q -p no:cacheprovider -m "not slow" tests/layers -x
cd benchmarks
python bench_training.py --device cuda --passes 3
python bench_training.py --device cuda --passes 3 --dtype bfloat16
python bench_kron.py --device cuda --passes 2
python bench_givens.py --device cuda --quick
python bench_sequential_paths.py --device cuda --networks 100
