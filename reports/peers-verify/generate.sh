#!/usr/bin/env bash
# Regenerate the peers' verify findings: `dbench verify` on every installed peer, default
# settings, then its markdown table (README.md here, pasted into the top-level README).
# Run with the dbench of an environment that has the peers: pip install -e ".[peers]".
set -euo pipefail
cd "$(dirname "$0")"
DBENCH=${DBENCH:-dbench}
PYTHON=${PYTHON:-$(dirname "$(command -v "$DBENCH")")/python}
"$DBENCH" verify --impl torchvision,timm,timm-per-channel,dropblock-pkg --json verify.json > verify.txt || true
"$PYTHON" - <<'PY' > README.md
import json
from dropblock_bench.report import verify_markdown
payload = json.load(open("verify.json"))
meta = payload["meta"]
print(f"# dbench verify on the public implementations\n")
print(f"dbench {meta['dbench_version']}, torch {meta['torch_version']}, {meta['platform']}, {meta['time']}.\n")
print("\n".join(verify_markdown(payload)))
PY
echo "wrote $(pwd)/README.md"
