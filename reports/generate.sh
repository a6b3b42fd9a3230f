#!/usr/bin/env bash
# Regenerate a reference report in one command:
#   bash reports/generate.sh [NAME]        (default NAME: cpu-reference)
# Times every registered implementation (built-ins, and the peers that are installed) on the
# ResNet-50 stage shapes, forward, forward+backward and in place in fp32, and fused*/paper
# also forward and in place in float16 and bfloat16, all in one run: the implementations and
# dtypes of a shape take turns, so rows compare within the same minutes. Then verifies them all;
# writes reports/NAME/{run.json,run.csv,verify.json,verify.csv,README.md,targets.md,*.png}.
# Set DBENCH to the dbench to use (default: the one on PATH), DBENCH_RUN_ARGS to add options to
# `dbench run` (e.g. "--malloc system"), PYTHON to the Python that imports that dbench's package
# (default: the one beside it) for targets.py. Takes about 30 minutes on 2 cores.
# 12 rounds: targets.py compares half precision with fp32 round by round, and its test needs at
# least 7 rounds to be able to say "slower" (--min-time is split over the rounds).
set -euo pipefail
source "$(dirname "$0")/report_env.sh" "${1:-cpu-reference}"
impls=$(python3 -c 'import json, sys; print(",".join(i["name"] for i in json.load(sys.stdin)["implementations"] if i.get("family", "dropblock2d") == "dropblock2d"))' <<<"$listing")
# Half precision for fused*, paper only (the peers' per-channel versions take minutes per case).
full_only=$(python3 -c 'import fnmatch, json, sys; print(",".join(i["name"] for i in json.load(sys.stdin)["implementations"] if i.get("family", "dropblock2d") == "dropblock2d" and not (fnmatch.fnmatch(i["name"], "fused*") or i["name"] == "paper")))' <<<"$listing")
"$dbench" run --family dropblock2d --preset resnet50 --impl "$impls" --dtype float32,float16,bfloat16 --mode both --inplace --min-time 1 --rounds 12 \
  --exclude "mode=backward inplace=true" --exclude "mode=backward dtype=float16,bfloat16" \
  ${full_only:+--exclude "impl=$full_only dtype=float16,bfloat16"} \
  ${DBENCH_RUN_ARGS:-} --json "$out/run.json" --csv "$out/run.csv" || [ $? -eq 1 ]  # error rows are findings
"$dbench" verify --impl "$impls" --json "$out/verify.json" --csv "$out/verify.csv" || [ $? -eq 1 ]  # failures are findings
"$dbench" report "$out/run.json" --verify "$out/verify.json" -o "$out"
"$python" "$(dirname "$0")/targets.py" "$out/run.json" > "$out/targets.md"  # the fused targets, met or missed
echo "report: $out/README.md"
