#!/usr/bin/env bash
# No speed lost to the operator: the ResNet-50 stages (batch 32, block 7, p 0.1, fp32, CPU),
# fused and fused-shared, timed before and after by two installations side by side.
#
#   bash reports/fused-operator/measure.sh ../venv-before/bin/dbench .venv/bin/dbench
#
# 1. `dbench ab`: both installations alternately, round by round, in pairs of fresh workers,
#    forward and forward+backward: the ratio after/before of each case, with its interval.
# 2. One `dbench run` of each (forward, forward+backward, in place), back to back, each judged
#    against the README's targets by reports/targets.py (ratios to the floor op x * c).
# Writes ab.md, ab.json, before-targets.md, after-targets.md here (about 25 minutes on 2 cores).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
before="$1" after="$2"
python="$(dirname "$after")/python"
cases=(--preset resnet50 --impl fused,fused-shared --mode both)

set +e
"$after" ab --base "$before" --head "$after" "${cases[@]}" --max-pairs 16 --budget 1800 \
    --format markdown --json "$here/ab.json" > "$here/ab.md"
status=$?
set -e
[ "$status" -le 1 ] || { echo "dbench ab failed (exit $status)" >&2; exit "$status"; }

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for side in before after; do
    "${!side}" run "${cases[@]}" --inplace --json "$scratch/$side.json" > /dev/null
    "$python" "$here/../targets.py" "$scratch/$side.json" > "$here/$side-targets.md"
done
echo "wrote $here/{ab.md,ab.json,before-targets.md,after-targets.md}"
