#!/usr/bin/env bash
# Screenshots of the built documentation site with headless Chromium (Debian's
# `chromium` package: apt-get install -y chromium): the home page, one guide and
# one API page, served from site/ by python -m http.server on localhost.
#   bash scripts/docs_screenshots.sh [output-dir]   (default docs/screenshots)
# Builds the site first unless KERAS_SPARSE_DOCS_NO_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/screenshots}"
mkdir -p "$out"
browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
  echo "docs_screenshots: chromium not found; install it with: apt-get install -y chromium" >&2
  exit 1
fi
if [ "${KERAS_SPARSE_DOCS_NO_BUILD:-0}" != "1" ]; then
  bash scripts/docs.sh
fi
port="${KERAS_SPARSE_DOCS_PORT:-8765}"
.venv/bin/python -m http.server "$port" --bind 127.0.0.1 --directory site >/dev/null 2>&1 &
server=$!
profile="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$profile"' EXIT
for _ in $(seq 50); do
  if .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" 2>/dev/null; then break; fi
  sleep 0.1
done
shot() {  # shot NAME PATH [HEIGHT]
  "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$profile" --window-size="1400,${3:-1000}" \
    --screenshot="$out/$1.png" "http://127.0.0.1:$port/$2" >/dev/null 2>&1
  echo "docs_screenshots: $out/$1.png <- /$2"
}
shot home ""
shot guide-sparse-conv "guides/sparse-conv/"
shot api-layers "reference/layers/"
# Small files to commit: a 64-colour palette is plenty for text on white.
.venv/bin/python - "$out" <<'PY'
import sys
from pathlib import Path

from PIL import Image

for path in Path(sys.argv[1]).glob("*.png"):
    Image.open(path).convert("RGB").quantize(colors=64).save(path, optimize=True)
PY
