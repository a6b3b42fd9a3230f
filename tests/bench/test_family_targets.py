"""Speed targets of the fast DropBlock3d, DropPath, SpatialDropout and Cutout: at the family's
largest preset shape (forward, fp32, CPU, out of place), at most ``FLOOR_BOUND`` times the floor
op ``x * c`` and behind no installed peer of the family (by the paired rounds: see
``family_targets.versus``), all timed side by side in one process by ``dbench run``'s engine
(the cases of one setting take turns, round by round).

Run: ``pytest tests/bench/test_family_targets.py --benchmark-only`` (threads: ``DBENCH_THREADS``,
default 2). The bounds come from ``reports/family_targets.py``, the one copy. Each test records
its ratios in ``extra_info``.
"""

from __future__ import annotations

import os

import pytest
import torch
from report_targets import family_targets

from dropblock_bench.registry import default_registry
from dropblock_bench.run.allocator import steady_glibc_malloc
from dropblock_bench.run.matrix import DEFAULT_BLOCK_SIZES, PRESETS, RunCase
from dropblock_bench.run.timing import RunSettings, run_group

torch.set_num_threads(int(os.environ.get("DBENCH_THREADS", "2")))
steady_glibc_malloc()
SETTINGS = RunSettings(min_time_s=1.0, rounds=8, measure_memory=False)


def _block_size(family: str) -> int:
    """The block size (Cutout: hole length) of the preset that holds the largest shape."""
    shape = family_targets.largest_preset_shape(family)
    for preset in PRESETS[family].values():
        if shape in preset.shapes:
            return preset.block_size
    return DEFAULT_BLOCK_SIZES.get(family, 0)


@pytest.mark.parametrize("family", list(family_targets.FAST))
def test_the_fast_implementation_is_near_its_floor_and_ahead_of_every_peer(benchmark, family):
    registry = default_registry()
    fast = family_targets.FAST[family]
    members = [impl for impl in registry.implementations(family=family) if impl.name == fast or impl.origin != "dropblock-bench"]
    shape = family_targets.largest_preset_shape(family)
    cases = [RunCase(impl.name, "cpu", "float32", shape, _block_size(family), 0.0 if family == "cutout" else 0.1, "forward",
                     family=family, holes=1 if family == "cutout" else 0) for impl in members]  # fmt: skip
    records = benchmark.pedantic(run_group, args=(cases, {impl.name: impl for impl in members}, SETTINGS), rounds=1, iterations=1)
    rows = {record.case.implementation: record.to_dict() for record in records if record.timing is not None}
    assert fast in rows, [record.reason for record in records]
    ratio = rows[fast]["floor_ratio"]
    verdicts = {name: family_targets.versus(rows[fast], row) for name, row in rows.items() if name != fast}
    benchmark.extra_info.update({"floor_ratio": ratio, **{f"{name}_ms": row["median_ms"] for name, row in rows.items()},
                                 **{f"vs_{name}": verdict for name, verdict in verdicts.items()}})  # fmt: skip
    assert ratio is not None and ratio <= family_targets.FLOOR_BOUND, f"{fast}: {ratio:.2f} x floor at {shape}"
    behind = {name: rows[name]["median_ms"] for name, verdict in verdicts.items() if verdict == "behind"}
    assert not behind, f"{fast} ({rows[fast]['median_ms']:.3g} ms) is behind {behind}"
