# Sourced by generate.sh and families.sh: the report folder and the tools, from $1 (the report's
# name) and the environment. Sets out (reports/NAME, created), dbench ($DBENCH, default the one
# on PATH), python ($PYTHON, default the Python beside that dbench, else python3) and listing
# (`dbench list --json`).
set -euo pipefail
out="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$1"
dbench=${DBENCH:-dbench}
python=${PYTHON:-$(dirname "$(command -v "$dbench")")/python}
command -v "$python" >/dev/null || python=python3
mkdir -p "$out"
listing=$("$dbench" list --json)
