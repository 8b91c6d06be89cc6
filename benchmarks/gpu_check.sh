#!/usr/bin/env bash
# The GPU check (issue: a GPU path): the tests of the kernel paths on the
# GPU, then a short GPU benchmark, in under 8 minutes on one CUDA device.
# Not run yet: no CUDA machine has been available to this project. It needs
# a Python with keras-sparse's dependencies and CUDA builds of torch (and,
# for the JAX rows, jax[cuda]); point PYTHON at it (default .venv/bin/python).
#
#   bash benchmarks/gpu_check.sh            # writes benchmarks/results/gpu/
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
OUT=benchmarks/results/gpu
mkdir -p "$OUT"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'" || exit 1
status=0
for backend in torch jax; do
  echo "== tests on the GPU ($backend)"
  KERAS_BACKEND=$backend timeout 180 "$PY" -m pytest -q -p no:cacheprovider \
    tests/ops/test_backend_seam.py tests/layers/test_dense_parity.py \
    tests/layers/test_layer_contract.py 2>&1 | tail -3 | tee "$OUT/tests_$backend.txt" || status=1
done
for backend in torch jax; do
  echo "== SparseDense 9180 -> 230, batch 256 ($backend)"
  KERAS_BACKEND=$backend timeout 120 "$PY" benchmarks/sparse_dense_step.py \
    --densities 0.001 0.01 0.2 --steps 10 --rounds 2 --out "$OUT/sparse_dense_step_$backend.json" || status=1
done
echo "== wide layer 200,000 -> 20,000, 2M connections (torch)"
KERAS_BACKEND=torch timeout 60 "$PY" benchmarks/wide_layer.py --case 2M --steps 5 \
  --out "$OUT/wide_layer_torch_2M.json" || status=1
echo "== SparseConv2D step (torch)"
KERAS_BACKEND=torch timeout 60 "$PY" benchmarks/sparse_conv_step.py --steps 10 \
  --out "$OUT/sparse_conv_step_torch.json" || status=1
echo "== one SparseNet-40-24 step (torch)"
KERAS_BACKEND=torch timeout 60 "$PY" benchmarks/densenet_throughput.py --steps 3 \
  --out "$OUT/densenet_throughput_torch.json" || status=1
exit $status
