#!/usr/bin/env bash
# Fetch the wheels the GPU machine lacks (it has torch but not diffusers; see
# /work/.library/device/README.md) into .whl/ (git-ignored), pinned to the versions installed here.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
mkdir -p .whl
ver() { python3 -c "import importlib.metadata as m; print(m.version('$1'))"; }
plat=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
    manylinux1_x86_64 manylinux_2_24_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64; do
  plat+=(--platform "$p")
done
# huggingface_hub, tokenizers and safetensors there already satisfy these (hub 2.x would need httpx2)
for pkg in diffusers transformers peft regex; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${plat[@]}" -d .whl "$pkg==$(ver "$pkg")"
done
ls -la .whl
