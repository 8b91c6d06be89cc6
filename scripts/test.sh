#!/usr/bin/env bash
# Sets everything up, checks the package with ruff (lint and format) and mypy,
# then runs the whole test suite and the docstring examples once per Keras
# backend, each in its own process. Fails if any check or backend fails.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k connectivity`.
#
# The backends' processes run KERAS_SPARSE_TEST_JOBS at a time (default: one
# per CPU, at most one per backend), longest first (JAX, TensorFlow, PyTorch).
# On a 2-core Intel Xeon the tests took 10.0 min side by side against 12.9 min
# one after another (README). Each one's output goes to
# .test-logs/<backend>.log (`tail -f` it to follow) and is printed whole when
# it ends. KERAS_SPARSE_TEST_JOBS=1 runs them one after another with their
# output live.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
echo "================ lint, format, types ================"
.venv/bin/ruff check keras_sparse || exit 1
.venv/bin/ruff format --check keras_sparse || exit 1
.venv/bin/mypy keras_sparse || exit 1

backends="${KERAS_SPARSE_BACKENDS:-jax tensorflow torch}"
n_backends=$(wc -w <<< "$backends")
cpus=$(nproc 2>/dev/null || echo 1)
jobs="${KERAS_SPARSE_TEST_JOBS:-$(( cpus < n_backends ? cpus : n_backends ))}"
if ! [[ "$jobs" =~ ^[1-9][0-9]*$ ]]; then
  echo "KERAS_SPARSE_TEST_JOBS must be a positive integer (backends run at a time);" \
    "got '$jobs'. Use KERAS_SPARSE_TEST_JOBS=1 to run them one after another." >&2
  exit 2
fi
# `wait -n -p` (which job ended) needs bash 5.1.
if (( BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] < 501 )); then jobs=1; fi

run_backend() {  # backend, then pytest's extra arguments
  KERAS_BACKEND="$1" .venv/bin/python -m pytest -q -p no:cacheprovider \
    --doctest-modules tests keras_sparse "${@:2}"
}

passed=0; failed=0; failed_names=""
record() {  # backend, exit status
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); failed_names="$failed_names $1"; fi
}

if [ "$jobs" -eq 1 ]; then
  for backend in $backends; do
    echo "================ KERAS_BACKEND=$backend ================"
    run_backend "$backend" "$@"
    record "$backend" $?
  done
else
  logs=.test-logs
  mkdir -p "$logs"
  trap 'kill $(jobs -p) 2>/dev/null; exit 130' INT TERM
  declare -A backend_of started_at
  running=0
  finish_one() {
    local pid rc backend
    wait -n -p pid
    rc=$?
    backend=${backend_of[$pid]}
    echo "================ KERAS_BACKEND=$backend (exit $rc," \
      "$(( SECONDS - started_at[$backend] )) s) ================"
    cat "$logs/$backend.log"
    record "$backend" "$rc"
    running=$((running - 1))
  }
  for backend in $backends; do
    while [ "$running" -ge "$jobs" ]; do finish_one; done
    run_backend "$backend" "$@" > "$logs/$backend.log" 2>&1 &
    backend_of[$!]=$backend
    started_at[$backend]=$SECONDS
    running=$((running + 1))
    echo "started KERAS_BACKEND=$backend at $(date +%T): tail -f $logs/$backend.log"
  done
  while [ "$running" -gt 0 ]; do finish_one; done
fi
echo "backends: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || { echo "failing backends:$failed_names"; exit 1; }
