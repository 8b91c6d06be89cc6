#!/usr/bin/env bash
# Sets everything up, then runs the whole test suite once per Keras backend,
# each in its own process. Fails if any backend fails.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k connectivity`.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
backends="${KERAS_SPARSE_BACKENDS:-tensorflow jax torch}"
passed=0; failed=0; failed_names=""
for backend in $backends; do
  echo "================ KERAS_BACKEND=$backend ================"
  KERAS_BACKEND="$backend" .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
  rc=$?
  if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failed_names="$failed_names $backend"; fi
done
echo "backends: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || { echo "failing backends:$failed_names"; exit 1; }
