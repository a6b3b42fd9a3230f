"""reports/targets.py: each target read from its own rows and held to its own bound; misses in
bold and listed, missing rows named, bad files refused.

The synthetic run puts every value just inside its bound and gives each row a value of its
own, so that reading the wrong row, or comparing against the wrong bound, shows up as a miss
or as a missed miss."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from report_targets import SCRIPT, targets

ELEMENTS = math.prod(targets.STAGES["56"])
# Just inside each bound, and distinct across rows.
FP32 = {("fused", False): {"56": 1.49, "28": 1.48, "14": 2.97, "7": 2.96},
        ("fused-shared", False): {"56": 1.19, "28": 1.18, "14": 1.7, "7": 1.6},  # no bound at 14², 7²
        ("fused", True): {"56": 2.99, "28": 2.98, "14": 2.95, "7": 2.94},
        ("fused-shared", True): {"56": 1.29, "28": 1.28, "14": 1.27, "7": 1.26}}  # fmt: skip
HALF_BELOW = {"float16": 0.01, "bfloat16": 0.02}  # how far each half dtype sits below fp32's ratio


def _case(impl, stage, ms, ratio, dtype="float32", mode="forward", inplace=False, status="ok", **extra):
    return {"implementation": impl, "device": "cpu", "dtype": dtype, "shape": "x".join(map(str, targets.STAGES[stage])),
            "block_size": 7, "p": 0.1, "mode": mode, "inplace": inplace, "median_ms": ms, "floor_ratio": ratio,
            "status": status, **extra}


def _met() -> list[dict]:
    cases = []
    for s in targets.STAGES:
        bound = targets.SPEEDUP_TARGETS[s]
        cases += [_case("timm", s, 1.01, 1.3), _case("torchvision", s, bound + 0.1, 90.0),
                  _case("timm-per-channel", s, bound + 0.2, 80.0)]
        for (impl, inplace), ratios in FP32.items():
            ms = 1.0 if impl == "fused" else 0.99  # fused-shared just faster than timm's 1.01
            cases.append(_case(impl, s, ms, ratios[s], inplace=inplace))
            cases += [_case(impl, s, ms / 2, ratios[s] - below, dtype, inplace=inplace) for dtype, below in HALF_BELOW.items()]
    cases[3]["peak_mem_bytes"] = int(1.29 * ELEMENTS * 4)  # fused, 56², fp32, forward
    cases.append(_case("fused", "56", 3.0, 1.99, mode="backward", saved_bytes=int(0.99 * ELEMENTS)))
    cases.append(_case("fused", "56", 99.0, 99.0, status="error"))  # not ok: never read
    return cases


def _set(cases, value, impl, stage, key="floor_ratio", dtype="float32", mode="forward", inplace=False):
    shape = "x".join(map(str, targets.STAGES[stage]))
    [row] = [c for c in cases if (c["implementation"], c["shape"], c["dtype"], c["mode"], c["inplace"], c["status"])
             == (impl, shape, dtype, mode, inplace, "ok")]
    row[key] = value


def test_a_run_just_inside_every_target_says_so():
    lines, missed, unmeasured = targets.table(targets.Run({"cases": _met()}))
    assert missed == unmeasured == [] and not any("**" in line for line in lines)
    assert "| `fused` vs torchvision / timm per-channel | 15.1× / 15.2× | 10.1× / 10.2× |" in "\n".join(lines)


# One miss per comparison: (what is changed, the miss it must give).
MISSES = [
    ({"impl": "fused", "stage": "56", "value": 1.51}, "fused ×floor at 56²"),
    ({"impl": "fused", "stage": "14", "value": 3.01}, "fused ×floor at 14²"),
    ({"impl": "fused-shared", "stage": "28", "value": 1.21}, "fused-shared ×floor at 28²"),
    ({"impl": "torchvision", "stage": "56", "key": "median_ms", "value": 14.9}, "fused vs torchvision at 56²"),
    ({"impl": "timm-per-channel", "stage": "7", "key": "median_ms", "value": 9.9}, "fused vs timm-per-channel at 7²"),
    ({"impl": "fused-shared", "stage": "14", "key": "median_ms", "value": 1.02}, "fused-shared vs timm at 14²"),
    ({"impl": "fused", "stage": "28", "inplace": True, "value": 3.01}, "in place fused at 28²"),
    ({"impl": "fused-shared", "stage": "7", "inplace": True, "value": 1.31}, "in place fused-shared at 7²"),
    ({"impl": "fused", "stage": "7", "dtype": "float16", "value": 2.97}, "fused float16 vs fp32 at 7²"),
    ({"impl": "fused-shared", "stage": "56", "dtype": "bfloat16", "value": 1.2}, "fused-shared bfloat16 vs fp32 at 56²"),
    ({"impl": "fused", "stage": "14", "dtype": "bfloat16", "inplace": True, "value": 2.96}, "in place fused bfloat16 vs fp32 at 14²"),
    ({"impl": "fused-shared", "stage": "28", "dtype": "float16", "inplace": True, "value": 1.29}, "in place fused-shared float16 vs fp32 at 28²"),
    ({"impl": "fused", "stage": "56", "mode": "backward", "value": 2.01}, "fused forward + backward at 56²"),
    ({"impl": "fused", "stage": "56", "mode": "backward", "key": "saved_bytes", "value": ELEMENTS + 1}, "fused bytes saved for backward at 56²"),
    ({"impl": "fused", "stage": "56", "key": "peak_mem_bytes", "value": int(1.31 * ELEMENTS * 4)}, "fused peak memory at 56²"),
]


@pytest.mark.parametrize(("change", "miss"), MISSES, ids=[m for _, m in MISSES])
def test_each_comparison_misses_on_its_own_row(change, miss):
    cases = _met()
    _set(cases, **change)
    lines, missed, _ = targets.table(targets.Run({"cases": cases}))
    assert missed == [miss]
    assert sum(line.count("**") for line in lines) == 2  # one bold cell


def test_values_that_round_onto_their_bound_show_which_side_they_are_on():
    cases = _met()
    _set(cases, 1.504, "fused", "56")
    _set(cases, 14.6, "torchvision", "56", key="median_ms")
    text = "\n".join(targets.table(targets.Run({"cases": cases}))[0])
    assert "**1.504**" in text and "**14.6×**" in text


def test_rows_a_run_lacks_are_named_not_passed():
    cases = [c for c in _met() if c["implementation"] != "torchvision" and c["mode"] != "backward"]
    _lines, missed, unmeasured = targets.table(targets.Run({"cases": cases}))
    assert missed == []
    assert unmeasured == [f"fused vs torchvision at {s}²" for s in targets.STAGES] + [
        "fused forward + backward at 56²", "fused bytes saved for backward at 56²"]


def test_the_script_prints_a_titled_table_and_refuses_other_files(tmp_path):
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"meta": {"git_commit": "abcdef123", "threads": 2}, "cases": _met()}))
    done = subprocess.run([sys.executable, str(SCRIPT), str(run)], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("# Targets:") and "commit abcdef1" in done.stdout
    assert done.stdout.rstrip().endswith("Every target is met in this run.")
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps({"cases": _met() + _met()[:1]}))
    for path, why in ((tmp_path / "bench.json", "not a `dbench run --json`"), (twice, "two rows for")):
        if path.name == "bench.json":
            path.write_text(json.dumps({"benchmarks": []}))  # a pytest-benchmark file
        refused = subprocess.run([sys.executable, str(SCRIPT), str(path)], check=False, capture_output=True, text=True)
        assert refused.returncode == 2 and why in refused.stderr and "Traceback" not in refused.stderr


def _give_rounds(cases, ratios, impl="fused", stage="28", dtype="float32", per_round=2):
    """The forward, out-of-place row gets len(ratios) rounds of per_round samples each: round r
    at ratios[r] times its floor (1 ms)."""
    shape = "x".join(map(str, targets.STAGES[stage]))
    [row] = [c for c in cases if (c["implementation"], c["shape"], c["dtype"], c["mode"], c["inplace"], c["status"])
             == (impl, shape, dtype, "forward", False, "ok")]
    row["samples_ms"] = [ratio for ratio in ratios for _ in range(per_round)]
    row["floor_samples_ms"] = [1.0] * (per_round * len(ratios))
    row["samples_per_round"] = [per_round] * len(ratios)
    row["floor_samples_per_round"] = [per_round] * len(ratios)


ROUNDS = targets.MIN_PAIRED_ROUNDS + 1  # even, so alternating rounds cancel


def test_half_above_fp32_by_the_medians_but_not_round_by_round_is_met_and_said_so():
    cases = _met()
    _set(cases, 1.49, "fused", "28", dtype="float16")  # fp32's is 1.48
    _give_rounds(cases, [1.38, 1.58] * (ROUNDS // 2))  # fp32: 1.48 on average, up and down
    _give_rounds(cases, [1.49] * ROUNDS, dtype="float16")  # half: 0.11 above, then 0.09 below
    lines, missed, _ = targets.table(targets.Run({"cases": cases}))
    assert missed == [] and not any("**" in line for line in lines)
    [note] = [line for line in lines if line.startswith("Half precision decided by the paired test")]
    assert f"fused float16 at 28² (1.49 against 1.48: median excess +0.010 over {ROUNDS} rounds, p = " in note


def test_half_slower_in_every_round_is_a_miss_even_where_the_medians_tie():
    cases = _met()
    _set(cases, 1.48, "fused", "28", dtype="float16")  # equal to fp32's: met by the medians
    _give_rounds(cases, [1.40 + 0.01 * r for r in range(ROUNDS)])
    _give_rounds(cases, [1.41 + 0.01 * r for r in range(ROUNDS)], dtype="float16")  # 0.01 above in every round
    lines, missed, _ = targets.table(targets.Run({"cases": cases}))
    assert missed == ["fused float16 vs fp32 at 28²"]
    assert sum(line.count("**") for line in lines) == 2
    assert f"median excess +0.010 over {ROUNDS} rounds, p = 0.0039" in "\n".join(lines)  # 2**-8: all 8 above


def test_with_too_few_rounds_to_reach_the_level_the_medians_decide():
    few = targets.MIN_PAIRED_ROUNDS - 1
    assert 2.0**-few >= targets.HALF_ALPHA > 2.0**-targets.MIN_PAIRED_ROUNDS  # the test's smallest p
    cases = _met()
    _set(cases, 1.49, "fused", "28", dtype="float16")
    _give_rounds(cases, [1.38, 1.58] * (few // 2))
    _give_rounds(cases, [1.49] * few, dtype="float16")
    lines, missed, _ = targets.table(targets.Run({"cases": cases}))
    assert missed == ["fused float16 vs fp32 at 28²"]
    assert not any(line.startswith("Half precision decided") for line in lines)


def test_rounds_that_do_not_split_the_samples_are_refused(tmp_path):
    cases = _met()
    _give_rounds(cases, [1.48] * ROUNDS)
    [row] = [c for c in cases if c.get("samples_per_round")]
    row["samples_per_round"] = row["samples_per_round"][1:]
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"cases": cases}))
    refused = subprocess.run([sys.executable, str(SCRIPT), str(run)], check=False, capture_output=True, text=True)
    assert refused.returncode == 2 and "do not split into its rounds" in refused.stderr
