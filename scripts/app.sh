#!/usr/bin/env bash
# Install what the app needs (CPU torch by default) and start it on the embedded default model.
# GPU users: install a CUDA torch first (see README), then run this; the pin below is skipped
# when IMPLOSION_TORCH is set to "keep".
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ "${IMPLOSION_TORCH:-}" = keep ]; then
  $PY -m pip install -q --disable-pip-version-check -e .
else
  $PY -m pip install -q --disable-pip-version-check torch==2.13.0 -e .
fi
exec $PY -m core.cli app "$@"
