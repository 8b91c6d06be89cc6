#!/usr/bin/env bash
# Runs every benchmark on every backend (one process each) and writes
# docs/benchmarks.md. About 40 minutes on 2 cores. Not part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
R=benchmarks/results
mkdir -p "$R"
for backend in tensorflow jax torch; do
  export KERAS_BACKEND=$backend
  $PY benchmarks/sparse_dense_step.py --batch 256 \
    --densities 0.001 0.005 0.01 0.02 0.05 0.2 1.0 --out "$R/sparse_dense_step_${backend}_b256.json"
  for batch in 32 2048; do
    $PY benchmarks/sparse_dense_step.py --batch $batch --densities 0.001 0.01 0.2 \
      --out "$R/sparse_dense_step_${backend}_b${batch}.json"
  done
  for impl in csr sparse; do
    $PY benchmarks/wide_layer.py --case 2M --impl $impl --out "$R/wide_layer_${backend}_2M_${impl}.json"
  done
  $PY benchmarks/wide_layer.py --case 10M --impl csr --out "$R/wide_layer_${backend}_10M_csr.json"
  $PY benchmarks/sparse_conv_step.py --warmup 10 --out "$R/sparse_conv_step_$backend.json"
  for model in SparseNet-40-24 DenseNet-BC-100-12; do
    $PY benchmarks/densenet_throughput.py --model "$model" --out "$R/densenet_${backend}_${model}.json"
  done
done
KERAS_BACKEND=jax $PY benchmarks/big_roundtrip.py --out "$R/big_roundtrip_jax.json"
$PY benchmarks/report.py
