#!/usr/bin/env bash
# The selection-speed benchmark on a CUDA GPU, prepared as one run: every method from a cached
# selection model on the GPU (benchmarks/selection_speed.py --device cuda, ratios against the
# issue's CPU times of the original), then, where a copy of the original DeepCore code is
# given, the original's select() on the same GPU side by side (left out there: its GradMatch
# calls torch.lstsq, gone from today's torch, and its k-center and herding call a deprecated
# addmm_ overload that fails on CUDA with torch 2.11), then the CPU-versus-CUDA agreement of every
# method (benchmarks/gpu_api_check.py). Each part's output goes to OUT_DIR as a log.
# Usage: bash benchmarks/selection_speed_cuda.sh [FMNIST_ROOT] [ORIGINAL_CODE_DIR]
# Environment: OUT_DIR (default runs/selection-speed-cuda), THREADS (default 8).
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-/usr/share/datasets/fashion-mnist}
original=${2:-}
out=${OUT_DIR:-runs/selection-speed-cuda}
threads=${THREADS:-8}
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 2)" \
  || { echo "selection_speed_cuda.sh: no CUDA GPU (or no torch here); nothing run" >&2; exit 2; }
mkdir -p "$out"
export PYTHONUNBUFFERED=1
cache=$(mktemp -d)
python benchmarks/selection_speed.py --device cuda --threads "$threads" --rounds 2 --original \
  --data-root "$root" --cache-dir "$cache" 2>&1 | tee "$out/selection_speed.log"
if [ -n "$original" ]; then
  methods=margin,least-confidence,entropy,grand,graph-cut,facility-location
  methods=$methods,craig,glister:update=false,cal  # what the original runs on CUDA
  python benchmarks/selection_speed.py --device cuda --threads "$threads" --rounds 1 \
    --variant original --original-code "$original" --data-root "$root" --cache-dir "$cache" \
    --methods "$methods" \
    2>&1 | tee "$out/against_original.log"
fi
python benchmarks/gpu_api_check.py --device cuda 2>&1 | tee "$out/gpu_api_check.log"
