#!/usr/bin/env bash
# Sets everything up, fetches the qusage influenza-challenge data if needed
# (Debian package r-bioc-qusage, unpacked into ~/.cache/keras-sparse; no R),
# and runs the main job: `keras-sparse demo`. Extra arguments go to it,
# e.g. `bash scripts/demo.sh --backend torch --output my-run`.
# `bash scripts/demo.sh lenet5` runs the second demo (LeNet-5 on
# Fashion-MNIST; installs Debian's dataset-fashion-mnist if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export KERAS_BACKEND="${KERAS_BACKEND:-jax}"
fmnist=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ "${1:-}" = "lenet5" ] && [ ! -f "$fmnist" ] && [ -z "${KERAS_SPARSE_FASHION_MNIST_DIR:-}" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "[demo] installing Debian's dataset-fashion-mnist"
    apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; }
  else
    echo "[demo] Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist'" >&2
  fi
fi
exec .venv/bin/keras-sparse demo "$@"
