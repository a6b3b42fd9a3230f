#!/usr/bin/env bash
# Regenerate a reference report in one command:
#   bash reports/generate.sh [NAME]        (default NAME: cpu-reference)
# Times every registered implementation (built-ins, and the peers that are installed) on the
# ResNet-50 stage shapes, forward, forward+backward and in place (fp32), the built-ins also in
# float16 and bfloat16; verifies them all; writes
# reports/NAME/{run.json,run.csv,verify.json,verify.csv,README.md,*.png}.
# Set DBENCH to the dbench to use (default: the one on PATH). Takes about 10 minutes on 2 cores.
set -euo pipefail
name=${1:-cpu-reference}
out="$(cd "$(dirname "$0")" && pwd)/$name"
dbench=${DBENCH:-dbench}
mkdir -p "$out"
impls=$("$dbench" list --json | python3 -c 'import json, sys; print(",".join(i["name"] for i in json.load(sys.stdin)["implementations"]))')
"$dbench" run --preset resnet50 --impl "$impls" --mode both --inplace --min-time 1 --json "$out/run-fp32.json" --csv "$out/run-fp32.csv"
# Half precision: the built-ins only (the peers' per-channel versions take minutes per case).
"$dbench" run --preset resnet50 --impl 'fused*,paper' --dtype float16,bfloat16 --inplace --min-time 1 --json "$out/run-half.json" --csv "$out/run-half.csv"
"$dbench" merge "$out/run-fp32.json" "$out/run-half.json" -o "$out/run.json"
{ cat "$out/run-fp32.csv"; tail -n +2 "$out/run-half.csv"; } > "$out/run.csv"
rm "$out"/run-fp32.* "$out"/run-half.*
"$dbench" verify --impl "$impls" --json "$out/verify.json" --csv "$out/verify.csv" || [ $? -eq 1 ]  # failures are findings
"$dbench" report "$out/run.json" --verify "$out/verify.json" -o "$out"
echo "report: $out/README.md"
