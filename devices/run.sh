#!/usr/bin/env bash
# Start this bundle's app: check every file against manifest.json, then run
#   python -m edgecnn.runtime.app config=config.json [key=value ...]       (a detector: tracking)
#   python -m edgecnn.runtime.seg_app config=config.json [key=value ...]   (a segmenter: segmentation)
# Arguments are key=value overrides of the app (source=…, save=…, mot=…, jsonl=…, conf=…, zones=…).
# SERVE=host:port starts the live view (beyond loopback it needs TOKEN_FILE= or $EDGECNN_TOKEN),
# LINES=counts.yaml counts the lines and zones in it (the segmentation app: class shares of its zones),
# CAMERAS=site.yaml runs that site's cameras (a bundle built with cameras= runs its cameras.yaml without
# it); arguments given to run.sh win over them.
# The Python is the bundle's venv (.venv, made by `edgecnn deploy`) unless EDGECNN_PYTHON is set.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${EDGECNN_PYTHON:-$HERE/.venv/bin/python}"
if [ ! -x "$PYTHON" ]; then
  echo "run.sh: no Python at $PYTHON: install the bundle with \`edgecnn deploy\` (or set EDGECNN_PYTHON)" >&2
  exit 1
fi
# sha256sum checks "<hash>  <path>" lines; manifest.json lists every file of the bundle.
if ! (cd "$HERE" && "$PYTHON" -c 'import json, sys
files = json.load(open("manifest.json"))["files"]
sys.stdout.write("".join(f"{digest}  {path}\n" for path, digest in sorted(files.items())))' \
      | sha256sum --check --strict --quiet); then
  echo "run.sh: $HERE does not match its manifest.json (files changed or missing); refusing to start" >&2
  exit 1
fi
export PYTHONPATH="$HERE" PYTHONDONTWRITEBYTECODE=1
APP="$(cd "$HERE" && "$PYTHON" -c 'import json; print(json.load(open("manifest.json")).get("app", "edgecnn.runtime.app"))')"
FROM_ENV=()
[ -n "${SERVE:-}" ] && FROM_ENV+=("serve=$SERVE")
if [ "$APP" = edgecnn.runtime.seg_app ]; then
  [ -n "${LINES:-}" ] && FROM_ENV+=("zones=$LINES")
else
  [ -n "${LINES:-}" ] && FROM_ENV+=("lines=$LINES")
  [ -n "${CAMERAS:-}" ] && FROM_ENV+=("cameras=$CAMERAS")
fi
[ -n "${TOKEN_FILE:-}" ] && FROM_ENV+=("token_file=$TOKEN_FILE")
exec "$PYTHON" -m "$APP" config="$HERE/config.json" ${FROM_ENV[@]+"${FROM_ENV[@]}"} "$@"
