#!/usr/bin/env bash
# Creates .venv (if needed) and installs keras-sparse with all three Keras
# backends (TensorFlow CPU, JAX CPU, PyTorch 2.13.0 CPU) and the test tools.
# Idempotent: a second run with an unchanged pyproject.toml does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=".venv/.keras-sparse-installed"
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "[setup] installing keras-sparse[all,test] into .venv (a few minutes on a fresh machine)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  # torch is pinned to 2.13.0 in pyproject.toml: that CPU wheel is found
  # locally; any other version would pull CUDA packages.
  .venv/bin/python -m pip install --quiet -e ".[all,test]"
  echo "$want" > "$stamp"
fi
