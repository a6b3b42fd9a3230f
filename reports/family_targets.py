"""The speed targets of the fast implementations of DropBlock3d, DropPath, SpatialDropout and
Cutout, and a markdown table of one run against them.

    python3 reports/family_targets.py reports/families-reference/run.json > reports/families-reference/targets.md

Each family's fast implementation, at its family's largest preset shape (the most elements of
any shape in ``dbench run``'s presets for the family), forward, float32, CPU, out of place:

- its median is at most FLOOR_BOUND times the floor op ``x * c`` timed alongside it;
- it is not behind any peer (an adapter of a public library of the same family, timed in the
  same run, at the same setting). Both were timed round by round with their floor ops, so the
  rounds are paired replicates: it is **behind** a peer when its per-round ratio to its floor
  exceeds the peer's by at least BEHIND_MARGIN (`dbench compare`'s default threshold, 5 % of
  the floor) in the median and by a one-sided Wilcoxon signed-rank test at p < ALPHA (the test
  `reports/targets.py` uses for half precision); **ahead** when not behind and its median
  ratio is the lower; **tied** otherwise. A run without enough rounds is judged by medians.
  DropPath and SpatialDropout are one multiply of ``x`` by a per-unit factor, as their peers'
  are: there "tied" is the most an honest run can show.

The bounds below are the one copy: tests/bench/test_family_targets.py (the gate) imports them.
Needs dropblock_bench importable. Exit code 0 whether or not targets are met, 2 for a file that
is not a `dbench run --json`.
"""

from __future__ import annotations

import json
import math
import sys

from dropblock_bench.run.matrix import PRESETS, Shape
from dropblock_bench.run.records import KEY_COLUMNS, case_key, setting_label
from dropblock_bench.stats import ratio_excess, round_medians

FAST = {"dropblock3d": "dropblock3d", "drop-path": "drop-path", "spatial-dropout": "spatial-dropout", "cutout": "cutout"}
"""Each family's fast implementation."""
FLOOR_BOUND = 1.5
"""The most a fast implementation's median may be, as a multiple of the floor op's."""
DEVICE, DTYPE, MODE = "cpu", "float32", "forward"
ALPHA = 0.01
BEHIND_MARGIN = 0.05
"""How much higher (in units of the floor) the fast one's ratio must be to be behind a peer."""
MIN_PAIRED_ROUNDS = math.floor(math.log2(1 / ALPHA)) + 1
"""The one-sided signed-rank test's smallest p over n rounds is 2**-n: below ALPHA from 7 on."""


def _rounds(row: dict) -> list[tuple[float, float]]:
    """A row's per-round (median ms, floor median ms); empty when the file holds no rounds."""
    try:
        times = round_medians(row["samples_ms"], row["samples_per_round"])
        floors = round_medians(row["floor_samples_ms"], row["floor_samples_per_round"])
    except (KeyError, TypeError, ValueError):
        return []
    return list(zip(times, floors)) if len(times) == len(floors) else []


def versus(fast: dict, peer: dict) -> str:
    """``"ahead"``, ``"tied"`` or ``"behind"``: the fast row against a peer's of the same run."""
    mine, theirs = _rounds(fast), _rounds(peer)
    if len(mine) == len(theirs) >= MIN_PAIRED_ROUNDS:
        excess = ratio_excess([(a, a_floor, b, b_floor) for (a, a_floor), (b, b_floor) in zip(mine, theirs)])
        if excess.median >= BEHIND_MARGIN and excess.p_value < ALPHA:
            return "behind"
        return "ahead" if float(fast["floor_ratio"]) < float(peer["floor_ratio"]) else "tied"
    return "ahead" if float(fast["median_ms"]) < float(peer["median_ms"]) else "behind"


def largest_preset_shape(family: str) -> Shape:
    """The shape with the most elements in any of the family's presets (the first of equals)."""
    shapes = [shape for preset in PRESETS[family].values() for shape in preset.shapes]
    return max(shapes, key=math.prod)


def builtin_names() -> set[str]:
    """The implementations this project ships (the others in a run are peers)."""
    from dropblock_bench.registry import default_registry

    return {impl.name for impl in default_registry().implementations(family=None) if impl.origin == "dropblock-bench"}


def target_rows(payload: object) -> dict[tuple[str, str], dict[str, dict]]:
    """The ok rows each target reads, by (family, setting) and then implementation: forward,
    float32, CPU, out of place, at the family's largest preset shape."""
    if not isinstance(payload, dict) or not isinstance(payload.get("cases"), list):
        raise ValueError("not a `dbench run --json` file (no 'cases' list)")  # noqa: TRY004 - reported as bad input
    rows: dict[tuple[str, str], dict[str, dict]] = {}
    for case in payload["cases"]:
        key = dict(zip(KEY_COLUMNS, case_key(case), strict=True))
        family = str(key["family"])
        if family not in FAST or case.get("status") != "ok":
            continue
        if (key["device"], key["dtype"], key["mode"], key["inplace"]) != (DEVICE, DTYPE, MODE, False):
            continue
        if key["shape"] != "x".join(map(str, largest_preset_shape(family))):
            continue
        rows.setdefault((family, setting_label(case)), {})[str(key["implementation"])] = case
    return rows


def table(payload: object, builtins: set[str]) -> list[str]:
    """The targets table in markdown, then the targets missed (or that every one is met)."""
    rows = target_rows(payload)
    lines = [
        f"| family | shape | setting | fast | ms | × floor (≤ {FLOOR_BOUND:g}) | peers in the run (ms) | not behind any peer |",
        "|---|---|---|---|---:|---:|---|---|",
    ]
    missed: list[str] = []
    for family, fast in FAST.items():
        shape = "x".join(map(str, largest_preset_shape(family)))
        settings = [setting for f, setting in rows if f == family]
        if not settings:
            lines.append(f"| {family} | {shape} | – | {fast} | – | – | – | not in this run |")
            missed.append(f"{family}: no forward float32 row at {shape}")
            continue
        for setting in settings:
            by_impl = rows[(family, setting)]
            row = by_impl.get(fast)
            peers = {name: float(case["median_ms"]) for name, case in by_impl.items() if name not in builtins}
            peer_text = ", ".join(f"{name} {ms:.3g}" for name, ms in sorted(peers.items(), key=lambda item: item[1])) or "none installed"
            if row is None:
                lines.append(f"| {family} | {shape} | {setting} | {fast} | – | – | {peer_text} | – |")
                missed.append(f"{family} {setting}: {fast} did not run")
                continue
            ms, ratio = float(row["median_ms"]), row.get("floor_ratio")
            floor_ok = ratio is not None and float(ratio) <= FLOOR_BOUND
            verdicts = {name: versus(row, by_impl[name]) for name in peers}
            behind = sorted(name for name, verdict in verdicts.items() if verdict == "behind")
            tied = sorted(name for name, verdict in verdicts.items() if verdict == "tied")
            ratio_text = "–" if ratio is None else f"{float(ratio):.2f}"
            if not peers:
                ahead_text = "no peer"
            elif behind:
                ahead_text = f"**no**: behind {', '.join(behind)}"
            else:
                ahead_text = "yes" + (f" (tied with {', '.join(tied)})" if tied else "")
            lines.append(f"| {family} | {shape} | {setting} | {fast} | {ms:.3g} | {ratio_text if floor_ok else f'**{ratio_text}**'}"
                         f" | {peer_text} | {ahead_text} |")  # fmt: skip
            if not floor_ok:
                missed.append(f"{family} {setting}: {fast} at {ratio_text} × floor, above {FLOOR_BOUND:g}")
            if behind:
                missed.append(f"{family} {setting}: {fast} ({ms:.3g} ms) behind {', '.join(behind)}")
    lines.append("")
    lines += [f"Missed: {item}" for item in missed] or ["Every target is met in this run."]
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python3 reports/family_targets.py RUN.json", file=sys.stderr)
        return 2
    try:
        with open(argv[1]) as handle:
            payload = json.load(handle)
        print("\n".join(table(payload, builtin_names())))
    except (OSError, ValueError) as error:
        print(f"error: {argv[1]}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
