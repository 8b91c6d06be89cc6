#!/usr/bin/env bash
# Runs every benchmark on every backend (one process each) and writes
# docs/benchmarks.md. About 60-70 minutes on 2 cores. Not part of the tests.
# The PyPI `sparselinear` peer runs only where it is importable (see
# benchmarks/README.md: it needs torch-scatter/torch-sparse built from source).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
R=benchmarks/results
mkdir -p "$R"
rm -f "$R"/wide_layer_{tensorflow,jax,torch}_*.json
declare -A WIDE=(
  [tensorflow]="sparse tf_sparse auto"
  [jax]="sparse jax_bcoo jax_bcsr auto"
  [torch]="sparse torch_sparse_csr sparselinear auto"
)
for backend in tensorflow jax torch; do
  export KERAS_BACKEND=$backend
  $PY benchmarks/sparse_dense_step.py --batch 256 --steps 100 --rounds 5 \
    --densities 0.001 0.005 0.01 0.02 0.05 0.1 0.2 0.3 0.5 1.0 --memory-densities 0.01 1.0 \
    --out "$R/sparse_dense_step_${backend}_b256.json"
  for batch in 32 2048; do
    $PY benchmarks/sparse_dense_step.py --batch $batch --densities 0.001 0.01 0.2 0.3 0.5 \
      --out "$R/sparse_dense_step_${backend}_b${batch}.json"
  done
  for impl in ${WIDE[$backend]}; do
    if [ "$impl" = sparselinear ] && ! $PY -c "import sparselinear" 2>/dev/null; then
      echo "sparselinear not importable: skipped (benchmarks/README.md)"; continue
    fi
    $PY benchmarks/wide_layer.py --case 2M --impl $impl --out "$R/wide_layer_${backend}_2M_${impl}.json" \
      || echo "wide_layer 2M $impl failed on $backend (recorded in its JSON when it could write one)"
  done
  $PY benchmarks/wide_layer.py --case 10M --impl auto --out "$R/wide_layer_${backend}_10M_auto.json"
  $PY benchmarks/sparse_dense_fit.py --out "$R/sparse_dense_fit_$backend.json"
  # On TensorFlow, Keras's pipeline for NumPy arrays dominates a fit epoch:
  # the same models fed three ways, taking turns.
  if [ "$backend" = tensorflow ]; then
    $PY benchmarks/sparse_dense_fit.py --data numpy numpy_unshuffled tf_dataset \
      --rounds 7 --out "$R/sparse_dense_fit_${backend}_data.json"
  fi
  $PY benchmarks/kernel_threads.py --cases ref wide --out "$R/kernel_threads_$backend.json"
  # The binding's default above; here the other choice of kernel thread
  # (on JAX, on its pure_callback path: its FFI calls never use it).
  other=on; [ "$backend" = tensorflow ] && other=off
  $PY benchmarks/kernel_threads.py --cases ref --kernel-thread $other --jax-path callback \
    --out "$R/kernel_threads_${backend}_kernel_thread_$other.json"
  # JAX's FFI path never uses the kernel thread.
  if [ "$backend" != jax ]; then
    $PY benchmarks/kernel_thread_step.py --out "$R/kernel_thread_step_$backend.json"
  fi
  taskset -c 0 $PY benchmarks/kernel_threads.py --cases ref \
    --out "$R/kernel_threads_${backend}_1cpu.json"
  $PY benchmarks/sparse_conv_step.py --warmup 10 --out "$R/sparse_conv_step_$backend.json"
  for model in SparseNet-40-24 DenseNet-BC-100-12; do
    $PY benchmarks/densenet_throughput.py --model "$model" --out "$R/densenet_${backend}_${model}.json"
  done
done
KERAS_BACKEND=jax $PY benchmarks/big_roundtrip.py --out "$R/big_roundtrip_jax.json"
# The wide layer with the code of the time the speed issue was filed
# (e79ce77) and with the code whose run gave its figures (abb2905), on this
# machine, in alternating processes (about 1.5 minutes a pair).
$PY benchmarks/wide_layer_ab.py --base abb2905 e79ce77 --pairs 5 --out-dir "$R"
$PY benchmarks/report.py
