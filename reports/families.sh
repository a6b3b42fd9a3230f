#!/usr/bin/env bash
# Regenerate the reference report of the families beside DropBlock2d in one command:
#   bash reports/families.sh [NAME]        (default NAME: families-reference)
# For each family (DropBlock3d, DropPath, SpatialDropout, Cutout), one `dbench run` of every
# registered implementation of it (built-ins, and the peers that are installed) on all the
# family's presets, forward and forward+backward in fp32: within a run the implementations of
# a shape take turns, so the fast one, its floor op and its peers compare within the same
# minutes. The runs are merged, every implementation of the four families is verified, and
# reports/NAME/{run.json,verify.json,verify.csv,README.md,targets.md,*.png} are written.
# Set DBENCH to the dbench to use (default: the one on PATH), PYTHON to the Python that imports
# its package (default: the one beside it) for family_targets.py. About 20 minutes on 2 cores.
set -euo pipefail
source "$(dirname "$0")/report_env.sh" "${1:-families-reference}"
runs=()
impls_all=()
for family in dropblock3d drop-path spatial-dropout cutout; do
  impls=$(python3 -c 'import json, sys; print(",".join(i["name"] for i in json.load(sys.stdin)["implementations"] if i["family"] == sys.argv[1]))' "$family" <<<"$listing")
  presets=$(python3 -c 'import sys; print({"dropblock3d": "video", "drop-path": "vit convnext", "spatial-dropout": "resnet50", "cutout": "cifar imagenet"}[sys.argv[1]])' "$family")
  impls_all+=("$impls")
  for preset in $presets; do
    "$dbench" run --family "$family" --preset "$preset" --impl "$impls" --mode both --min-time 0.5 --rounds 8 \
      --json "$out/run-$family-$preset.json" || [ $? -eq 1 ]  # error rows are findings
    runs+=("$out/run-$family-$preset.json")
  done
done
(cd "$out" && "$dbench" merge "${runs[@]##*/}" -o run.json)  # the shards named as in the folder
rm -f "${runs[@]}"
impl_list=$(IFS=,; echo "${impls_all[*]}")
"$dbench" verify --impl "$impl_list" --json "$out/verify.json" --csv "$out/verify.csv" || [ $? -eq 1 ]  # failures are findings
"$dbench" report "$out/run.json" --verify "$out/verify.json" -o "$out"
"$python" "$(dirname "$0")/family_targets.py" "$out/run.json" > "$out/targets.md"
echo "report: $out/README.md"
