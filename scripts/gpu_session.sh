#!/usr/bin/env bash
# Everything that needs the GPU, as one prepared run on the device machine (15 min per session):
#   here:   bash scripts/gpu_wheels.sh
#   device: run(command="bash scripts/gpu_session.sh", carry=[".whl"], timeout_s=560)
# Results come back under $OUT (≤ 8 files): nvidia-smi.txt, model_gpu.json/.md (UNet training
# throughput by batch, eager and torch.compile), gpu-full.log, gpu-full-pack.tgz (the sweep's pack
# + per-level records, for assets/demo), real_gpu.json (tiny random SD, bf16), session.log.
# GPU_DRY=1 runs the same steps on CPU with the ci-smoke preset (to check the script here).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/session.log") 2>&1
export PYTHONUNBUFFERED=1
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1 && [ -z "${GPU_DRY:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
if [ -n "${GPU_DRY:-}" ]; then
  DEV=cpu; PRESET=ci-smoke; BATCHES="8"; SWEEP_LIMIT=600; EXTRA="--model ${GPU_DRY_MODEL:-assets/base}"
else
  DEV=cuda; PRESET=gpu-full; BATCHES="256 1024 4096"; SWEEP_LIMIT=${SWEEP_LIMIT:-330}; EXTRA=""
  nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
fi
t0=$(date +%s)
echo "== throughput ($DEV)"
timeout 120 python3 bench/model.py --device "$DEV" --steps 20 --batches $BATCHES \
  $([ -z "${GPU_DRY:-}" ] && echo --compile) --out "$OUT/model" \
  && cp "$OUT/model/model"*.json "$OUT/model_gpu.json" && cp "$OUT/model/model"*.md "$OUT/model_gpu.md"
rm -rf "$OUT/model"
echo "== sweep $PRESET ($(( $(date +%s) - t0 )) s so far)"
s0=$(date +%s)
timeout "$SWEEP_LIMIT" python3 -m core.cli sweep --preset "$PRESET" --device "$DEV" \
  --out /tmp/gpu-full $EXTRA > "$OUT/gpu-full.log" 2>&1
echo "sweep exit $? after $(( $(date +%s) - s0 )) s" | tee -a "$OUT/gpu-full.log"
mkdir -p /tmp/gpu-pack
python3 -m core.cli sweep-pack /tmp/gpu-full --out /tmp/gpu-pack/pack || true
cp -r /tmp/gpu-full/records /tmp/gpu-full/results.json /tmp/gpu-pack/ 2>/dev/null
tar czf "$OUT/gpu-full-pack.tgz" -C /tmp/gpu-pack .
echo "== real SD path, tiny random SD ($(( $(date +%s) - t0 )) s so far)"
if [ -z "${GPU_DRY:-}" ]; then
  timeout 150 python3 bench/real_gpu.py --out "$OUT/real_gpu.json"
fi
echo "== done in $(( $(date +%s) - t0 )) s"
