#!/usr/bin/env bash
# Install everything the test suite needs (CPU torch, the package, test tools, Ray for the cluster
# executor tests, Debian Chromium for the browser tests) and run the default suite (slow and gpu
# tests are deselected).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
$PY -m pip install -q --disable-pip-version-check torch==2.13.0 -e ".[test,cluster]"
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian chromium for the browser tests…"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "warning: could not install chromium; browser tests will be skipped"
  else
    echo "warning: chromium not found and not root; browser tests will be skipped"
  fi
fi
$PY -m ruff check .
$PY -m ruff format --check .
$PY -m mypy
exec $PY -m pytest "$@"
