#!/usr/bin/env bash
# Sets everything up, checks the package with ruff (lint and format) and mypy,
# then runs the whole test suite and the docstring examples once per Keras
# backend, each in its own process. Fails if any check or backend fails.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k connectivity`.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
echo "================ lint, format, types ================"
.venv/bin/ruff check keras_sparse || exit 1
.venv/bin/ruff format --check keras_sparse || exit 1
.venv/bin/mypy keras_sparse || exit 1
backends="${KERAS_SPARSE_BACKENDS:-tensorflow jax torch}"
passed=0; failed=0; failed_names=""
for backend in $backends; do
  echo "================ KERAS_BACKEND=$backend ================"
  # The test suite and every docstring example (--doctest-modules).
  KERAS_BACKEND="$backend" .venv/bin/python -m pytest -q -p no:cacheprovider \
    --doctest-modules tests keras_sparse "$@"
  rc=$?
  if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failed_names="$failed_names $backend"; fi
done
echo "backends: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || { echo "failing backends:$failed_names"; exit 1; }
