#!/usr/bin/env bash
# Does it pay? Every grid of this folder, then the combined table (docs/does-it-pay.md).
# About 40 minutes on 2 CPU cores; rerunning resumes finished runs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
for grid in static infobatch-0.5 infobatch-0.3 rs2-0.1 rs2-0.3 adaptive-gradmatch-0.1; do
    deepcore benchmark --config "$here/grid-$grid.yaml"
done
python "$here/../../../../benchmarks/pays.py" "$here/../../../../runs" --write "$here"
