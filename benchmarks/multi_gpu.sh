#!/usr/bin/env bash
# Multi-GPU check, for a machine with CUDA GPUs: the embedding and DeepFool scoring stages on
# one GPU versus all of them (one process per GPU, NCCL), then one whole Fashion-MNIST run
# under torchrun. Prints images/s per stage; record them in docs/benchmarks.md.
# Usage: bash benchmarks/multi_gpu.sh [/usr/share/datasets/fashion-mnist]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${1:-/usr/share/datasets/fashion-mnist}
N=$(python -c "import torch; print(torch.cuda.device_count())")
if [ "$N" -lt 1 ]; then echo "no CUDA GPU here" >&2; exit 2; fi
PROCS=1; if [ "$N" -gt 1 ]; then PROCS="1,$N"; fi
python benchmarks/distributed_scoring.py --device cuda --procs "$PROCS" --deepfool 60000 \
    --rounds 3 --data-root "$ROOT"
OUT=$(mktemp -d)
time torchrun --standalone --nproc-per-node "$N" -m deepcore_core run --dataset fashion-mnist \
    --data-root "$ROOT" --device cuda --method uniform --method grand --method deepfool \
    --fraction 0.1 --seed 0 --epochs 20 --selection-epochs 10 --cache-dir "$OUT/cache" \
    --output "$OUT/run"
