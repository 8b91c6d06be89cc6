#!/usr/bin/env bash
# Builds the documentation site (MkDocs + Material + mkdocstrings) with
# warnings as errors into site/ (git-ignored), or serves it locally.
#   bash scripts/docs.sh            # strict build into site/
#   bash scripts/docs.sh serve      # live preview on http://127.0.0.1:8000
# Extra arguments go to mkdocs (e.g. `bash scripts/docs.sh -d /tmp/site`).
# Needs the `docs` extra: .venv/bin/pip install -e ".[docs]".
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
if ! "$PY" -c "import mkdocs, material, mkdocstrings_handlers.python" 2>/dev/null; then
  echo "docs: MkDocs is not installed in $PY; run: $PY -m pip install -e \".[docs]\"" >&2
  exit 1
fi
export NO_MKDOCS_2_WARNING=1  # mkdocs-material's banner about MkDocs 2.0
if [ "${1:-}" = "serve" ]; then
  shift
  exec "$PY" -m mkdocs serve --strict "$@"
fi
start=$(date +%s)
"$PY" -m mkdocs build --strict "$@"
echo "docs: built in $(( $(date +%s) - start )) s (strict)"
