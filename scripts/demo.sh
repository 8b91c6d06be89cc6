#!/usr/bin/env bash
# Sets everything up, fetches the qusage influenza-challenge data if needed
# (Debian package r-bioc-qusage, unpacked into ~/.cache/keras-sparse; no R),
# and runs the main job: `keras-sparse demo`. Extra arguments go to it,
# e.g. `bash scripts/demo.sh --backend torch --output my-run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export KERAS_BACKEND="${KERAS_BACKEND:-jax}"
exec .venv/bin/keras-sparse demo "$@"
