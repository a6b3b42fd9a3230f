"""reports/targets.py: the fused targets read from a run, misses in bold and listed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "reports" / "targets.py"
_spec = importlib.util.spec_from_file_location("report_targets", SCRIPT)
targets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(targets)


def _case(impl, stage, ms, ratio, dtype="float32", mode="forward", inplace=False, **extra):
    return {"implementation": impl, "device": "cpu", "dtype": dtype, "shape": targets.STAGES[stage], "block_size": 7,
            "p": 0.1, "mode": mode, "inplace": inplace, "median_ms": ms, "floor_ratio": ratio, "status": "ok", **extra}


def _met() -> list[dict]:
    cases = []
    for s in targets.STAGES:
        cases += [_case("fused", s, 1.0, 1.1), _case("fused-shared", s, 0.9, 1.0), _case("timm", s, 1.2, 1.3),
                  _case("torchvision", s, 100.0, 100.0), _case("timm-per-channel", s, 100.0, 100.0)]
        for impl in ("fused", "fused-shared"):
            cases.append(_case(impl, s, 1.0, 1.2, inplace=True))
            for dtype in targets.HALF:
                cases += [_case(impl, s, 0.5, 1.0, dtype), _case(impl, s, 0.5, 1.0, dtype, inplace=True)]
    elements = 32 * 256 * 56 * 56
    cases[0]["peak_mem_bytes"] = elements * 4
    cases.append(_case("fused", "56", 3.0, 1.1, mode="backward", saved_bytes=elements // 50))
    return cases


def test_a_run_that_meets_every_target_says_so():
    lines, missed, unmeasured = targets.table(targets.Run({"cases": _met()}))
    assert missed == unmeasured == [] and not any("**" in line for line in lines)
    assert "| `fused` vs torchvision / timm per-channel | 100× / 100× |" in "\n".join(lines)


def test_each_kind_of_miss_is_bold_and_listed():
    cases = _met()
    for case in cases:
        if case["implementation"] == "fused" and case["shape"] == targets.STAGES["28"] and case["dtype"] == "float16" and not case["inplace"]:
            case["floor_ratio"] = 1.15  # above fp32's 1.1
        if case["implementation"] == "fused-shared" and case["shape"] == targets.STAGES["7"] and case["dtype"] == "float32" and not case["inplace"]:
            case["median_ms"] = 1.3  # slower than timm's 1.2
        if case["implementation"] == "torchvision" and case["shape"] == targets.STAGES["56"]:
            case["median_ms"] = 14.0  # 14x, short of 15x at 56²
    cases[-1]["saved_bytes"] = 4 * 32 * 256 * 56 * 56  # a float mask
    lines, missed, _ = targets.table(targets.Run({"cases": cases}))
    assert missed == ["fused vs torchvision at 56²", "fused-shared vs timm at 7²", "fused float16 vs fp32 at 28²",
                      "fused bytes saved for backward at 56²"]
    text = "\n".join(lines)
    assert "**4.000 byte saved per element**" in text and "**1.15**" in text and "**14×**" in text and "**0.9 vs 1.2**" not in text and "**1.3 vs 1.2**" in text


def test_rows_a_run_lacks_are_named_not_passed():
    cases = [c for c in _met() if c["implementation"] != "torchvision" and c["mode"] != "backward"]
    lines, missed, unmeasured = targets.table(targets.Run({"cases": cases}))
    assert missed == []
    assert unmeasured == [f"fused vs torchvision at {s}²" for s in targets.STAGES] + [
        "fused forward + backward at 56²", "fused bytes saved for backward at 56²"]


def test_the_script_prints_a_titled_table(tmp_path):
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"meta": {"git_commit": "abcdef123", "threads": 2}, "cases": _met()}))
    done = subprocess.run([sys.executable, str(SCRIPT), str(run)], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("# Targets:") and "commit abcdef1" in done.stdout
    assert done.stdout.rstrip().endswith("Every target is met in this run.")
