#!/usr/bin/env bash
# Runs every benchmark on every backend (one process each) and writes
# docs/benchmarks.md. About 10 minutes on 2 cores. Not part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p benchmarks/results
for backend in tensorflow jax torch; do
  KERAS_BACKEND=$backend .venv/bin/python benchmarks/sparse_dense_step.py \
    --out "benchmarks/results/sparse_dense_step_$backend.json"
  KERAS_BACKEND=$backend .venv/bin/python benchmarks/sparse_conv_step.py --warmup 10 \
    --out "benchmarks/results/sparse_conv_step_$backend.json"
done
.venv/bin/python benchmarks/report.py
