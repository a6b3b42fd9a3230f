"""``reports/family_targets.py``: which rows each family's targets read, and the verdicts its
table gives (met, above the floor bound, behind a peer, not in the run)."""

from __future__ import annotations

import pytest
from report_targets import family_targets

from dropblock_bench.run.matrix import RunCase
from dropblock_bench.run.records import CaseRecord, Timing

BUILTINS = {"drop-path", "drop-path-reference", "cutout", "dropblock3d", "spatial-dropout"}


def _row(name: str, family: str, shape: tuple[int, ...], ms: float, floor_ratio: float, **fields) -> dict:
    defaults = {"block_size": 0, "p": 0.1, "holes": 0}
    case = RunCase(name, "cpu", "float32", shape, mode="forward", family=family, **{**defaults, **fields})
    timing = Timing(ms, 0.01, ms, ms, 8, ms / floor_ratio, floor_ratio, 1.0)
    return CaseRecord(case, timing=timing).to_dict()


def test_the_largest_preset_shapes_are_the_issues():
    assert family_targets.largest_preset_shape("drop-path") == (64, 197, 768)
    assert family_targets.largest_preset_shape("cutout") == (64, 3, 224, 224)
    assert family_targets.largest_preset_shape("spatial-dropout") == (32, 256, 56, 56)
    assert family_targets.largest_preset_shape("dropblock3d") == (8, 256, 8, 56, 56)


def test_met_missed_and_absent_targets_are_told_apart():
    vit, imagenet = (64, 197, 768), (64, 3, 224, 224)
    cases = [
        _row("drop-path", "drop-path", vit, 20.0, 1.05),
        _row("drop-path-reference", "drop-path", vit, 60.0, 3.1),  # a built-in: not a peer
        _row("timm-drop-path", "drop-path", vit, 25.0, 1.3),
        _row("drop-path", "drop-path", (32, 96, 56, 56), 99.0, 9.0),  # not the largest shape: not read
        _row("cutout", "cutout", imagenet, 30.0, 1.6, block_size=112, p=0.0, holes=1),
        _row("spatial-dropout", "spatial-dropout", (32, 256, 56, 56), 50.0, 1.0),
        _row("torch-dropout2d", "spatial-dropout", (32, 256, 56, 56), 45.0, 0.9),
    ]
    lines = family_targets.table({"cases": cases}, BUILTINS)
    text = "\n".join(lines)
    assert "| drop-path | 64x197x768 | p=0.1 | drop-path | 20 | 1.05 | timm-drop-path 25 | yes |" in text
    assert "| cutout | 64x3x224x224 | holes=1 L=112 | cutout | 30 | **1.60** | none installed | no peer |" in text
    assert "**no**: behind torch-dropout2d" in text
    assert lines[lines.index("") + 1 :] == [
        "Missed: dropblock3d: no forward float32 row at 8x256x8x56x56",
        "Missed: spatial-dropout p=0.1: spatial-dropout (50 ms) behind torch-dropout2d",
        "Missed: cutout holes=1 L=112: cutout at 1.60 × floor, above 1.5",
    ]


def test_a_file_that_is_not_a_run_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"nope": 1}')
    assert family_targets.main(["family_targets.py", str(bad)]) == 2
    assert "not a `dbench run --json` file" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no 'cases' list"):
        family_targets.target_rows([])


def _with_rounds(row: dict, times: list[float], floors: list[float]) -> dict:
    return {**row, "samples_ms": times, "samples_per_round": [1] * len(times),
            "floor_samples_ms": floors, "floor_samples_per_round": [1] * len(floors)}  # fmt: skip


def test_against_a_peer_the_paired_rounds_decide_behind_tied_or_ahead():
    vit = (64, 197, 768)
    fast = _with_rounds(_row("drop-path", "drop-path", vit, 3.1, 1.03), [3.1] * 8, [3.0] * 8)
    slower = _with_rounds(_row("p", "drop-path", vit, 3.3, 1.1), [3.3 + 0.01 * i for i in range(8)], [3.0] * 8)
    a_little_faster = _with_rounds(_row("s", "drop-path", vit, 3.05, 1.017), [3.05 - 0.001 * i for i in range(8)], [3.0] * 8)
    noisy = _with_rounds(_row("q", "drop-path", vit, 3.05, 1.02), [3.0, 3.2, 2.9, 3.3, 3.0, 3.1, 2.95, 3.15], [3.0] * 8)
    faster = _with_rounds(_row("r", "drop-path", vit, 2.9, 0.97), [2.9 - 0.01 * i for i in range(8)], [3.0] * 8)
    assert family_targets.versus(fast, slower) == "ahead"
    assert family_targets.versus(fast, faster) == "behind"
    assert family_targets.versus(fast, noisy) == "tied"  # not slower by the test, median ratio not lower
    assert family_targets.versus(fast, a_little_faster) == "tied"  # consistently, but by less than 5 % of the floor
    few = {**fast, "samples_per_round": [4, 4], "samples_ms": [3.1] * 8}  # 2 rounds: the medians decide
    assert family_targets.versus(few, faster) == "behind" and family_targets.versus(few, slower) == "ahead"
