#!/bin/bash
# SLURM: one node, 8 GPUs, one accelerate launcher that starts 8 processes.
#   sbatch examples/accelerate/slurm.sh SD_DIR DATA_DIR OUT_DIR
#SBATCH --job-name=implosion-real
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1          # accelerate spawns the per-GPU processes itself
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64           # image decoding runs in the training processes
#SBATCH --time=12:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail
MODEL=${1:?SD folder}; DATA=${2:?dataset}; OUT=${3:?output folder}
export HF_HUB_OFFLINE=1               # compute nodes usually have no network: use local folders
cd "${SLURM_SUBMIT_DIR}"
srun accelerate launch \
  --config_file examples/accelerate/multi_gpu.yaml \
  --num_processes "${SLURM_GPUS_ON_NODE:-8}" \
  --main_process_port 29500 \
  -m core.training.accelerate_train \
  --model "$MODEL" --data "$DATA" --out "$OUT" \
  --mode lora --rank 16 --steps 2000 --batch 8 --lr 1e-4 \
  --mixed_precision bf16 --gradient_checkpointing
