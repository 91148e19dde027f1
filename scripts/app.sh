#!/usr/bin/env bash
# Start the explorer on the embedded default model, installing only what is missing.
#
#   bash scripts/app.sh [--port P] [--host H] [other `implosion app` flags]
#   bash scripts/app.sh --server.port P [--server.address H]     (Streamlit's spelling works too)
#
# Nothing is installed when this checkout's code and its dependencies already import: a second
# start installs nothing. An editable install of another checkout is never re-pointed here: the
# app runs this checkout's code from this folder (PYTHONPATH) whatever is installed.
# GPU users: install a CUDA torch first (see README) and set IMPLOSION_TORCH=keep, so the CPU
# torch pin is skipped. APP_CHECK_ONLY=1: install what is missing, then print the app command
# instead of starting it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
HERE=$(pwd -P)

# What imports without this folder on the path (-I: no cwd, no PYTHONPATH): "ok", "deps" (a
# dependency is missing), "core-missing" (no install of this project) or "core-elsewhere PATH".
state=$("$PY" -I - "$HERE" <<'EOF'
import importlib.util as u
import sys
import tomllib

here = sys.argv[1]
with open(f"{here}/pyproject.toml", "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]
modules = {"pillow": "PIL", "umap-learn": "umap"}
for dep in deps:
    name = dep.split(";")[0].split("[")[0]
    for sep in "<>=!~ ":
        name = name.split(sep)[0]
    if u.find_spec(modules.get(name, name.replace("-", "_"))) is None:
        print("deps")
        sys.exit()
spec = u.find_spec("core")
if spec is None or not spec.submodule_search_locations:
    print("core-missing")
else:
    where = list(spec.submodule_search_locations)[0]
    print("ok" if where == f"{here}/core" else f"core-elsewhere {where}")
EOF
)

pin=(torch==2.13.0)
[ "${IMPLOSION_TORCH:-}" = keep ] && pin=()
pip_install() { "$PY" -m pip install -q --disable-pip-version-check "$@"; }
case "$state" in
  ok) ;;
  core-missing) pip_install --no-deps -e . ;;  # the `implosion` command; dependencies are there
  core-elsewhere*)
    echo "note: the installed implosion-lab is ${state#core-elsewhere } (left as it is);" \
      "this start runs the code in $HERE" >&2 ;;
  deps)
    installed=$("$PY" -I -c "import importlib.util as u; print(u.find_spec('core') is not None)")
    if [ "$installed" = True ]; then  # another checkout is installed: its dependencies only
      mapfile -t deps < <("$PY" -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))")
      pip_install "${pin[@]}" "${deps[@]}"
    else
      pip_install "${pin[@]}" -e .
    fi ;;
  *) echo "scripts/app.sh: could not check the installation ($state)" >&2; exit 1 ;;
esac

# Streamlit's own spelling of the address flags, passed on as `implosion app` flags.
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --server.port) args+=(--port "$2"); shift 2 ;;
    --server.port=*) args+=(--port "${1#*=}"); shift ;;
    --server.address) args+=(--host "$2"); shift 2 ;;
    --server.address=*) args+=(--host "${1#*=}"); shift ;;
    *) args+=("$1"); shift ;;
  esac
done

export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's code, in workers too
if [ -n "${APP_CHECK_ONLY:-}" ]; then
  echo "$PY -m core.cli app ${args[*]}"
  exit 0
fi
exec "$PY" -m core.cli app "${args[@]}"
