#!/usr/bin/env bash
# Sets everything up, fetches the data if needed (qusage influenza-challenge
# data from Debian's r-bioc-qusage; Reactome's hierarchy from the PyPI wheel
# binn 0.1.1 and Debian's r-bioc-org.hs.eg.db; cached in ~/.cache/keras-sparse;
# no R) and runs the main job, the Reactome pathway-network study:
# `keras-sparse demo`. Extra arguments go to it, e.g.
# `bash scripts/demo.sh --study full` or `--backend torch --output my-run`.
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
