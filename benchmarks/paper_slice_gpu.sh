#!/bin/bash
# A slice of the DeepCore paper's tables on a CUDA GPU, both variants:
#   CIFAR-10 (ResNet-18, 200 epochs; fractions 1/10/30%; uniform, graph cut, forgetting, Cal),
#   where DATA_ROOT/cifar-10-batches-py exists, and the same grid on Fashion-MNIST with
#   ResNet-18 (fixed-iteration protocol, docs/results/fashion-mnist/).
# Usage: bash benchmarks/paper_slice_gpu.sh DATA_ROOT [FMNIST_ROOT]
# Results: runs/cifar10-paper*/ and runs/fashion-mnist-resnet18*/, each with report.md.
set -euo pipefail
root=${1:?usage: paper_slice_gpu.sh DATA_ROOT [FMNIST_ROOT]}
fmnist=${2:-/usr/share/datasets/fashion-mnist}
cd "$(dirname "$0")/.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 2)" \
  || { echo "paper_slice_gpu.sh: no CUDA GPU (or no torch here); nothing run" >&2; exit 2; }
if [ -d "$root/cifar-10-batches-py" ]; then
  for g in grid grid-original; do
    deepcore benchmark --config docs/results/cifar10/$g.yaml --data-root "$root"
  done
else
  echo "paper_slice_gpu.sh: no $root/cifar-10-batches-py; CIFAR-10 skipped" >&2
fi
for g in grid grid-original; do
  deepcore benchmark --config docs/results/fashion-mnist/$g.yaml --data-root "$fmnist" \
    --device cuda --selection-network resnet18 --network resnet18 --jobs 1 \
    --method uniform --method graph-cut --method forgetting --method cal \
    --output "runs/fashion-mnist-resnet18${g#grid}"
done
