#!/usr/bin/env bash
# The GPU checks of `fused` in one command, on a CUDA machine with Triton, in under 4 minutes:
#   bash reports/gpu-check.sh [OUT]        (OUT: results folder, default reports/gpu-check/results)
# 1. the operator's exactness on CUDA: Triton against the pure-torch kernel with the same seeds
#    (same sampler: identical forward, gradient and double backward), opcheck on CUDA;
# 2. `dbench verify`'s checks of fused and fused-shared on CUDA (the verify engine, quick mode);
# 3. `dbench run --device cuda` of fused and fused-shared against the copy floor `x * c` at the
#    ResNet-50 stages, fp32 and fp16: floor_ratio near 1 means the copy bandwidth is reached.
# Each step writes into OUT; the summary (fraction of the floor's bandwidth) is OUT/summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-reports/gpu-check/results}"
mkdir -p "$OUT"
PY="${PYTHON:-.venv/bin/python}"
DBENCH="${DBENCH:-.venv/bin/dbench}"
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "gpu-check: no CUDA device here")'
timeout 120 "$PY" reports/gpu-check/gpu_check.py "$OUT"
timeout 90 "$DBENCH" run --device cuda --impl fused,fused-shared --preset resnet50 --dtype float32,float16 \
    --mode both --rounds 4 --min-time 0.05 --json "$OUT/run.json" --csv "$OUT/run.csv" > "$OUT/run.txt"
"$PY" reports/gpu-check/gpu_check.py "$OUT" --summarise
cat "$OUT/summary.md"
