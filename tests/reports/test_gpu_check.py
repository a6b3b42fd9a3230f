"""reports/gpu-check.sh: valid bash that stops with one line where there is no CUDA device, and
a summary that reads a run's floor ratios (the GPU steps themselves need a CUDA machine)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "reports" / "gpu-check.sh"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "reports" / "gpu-check" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here: the script would run")
def test_without_cuda_it_stops_with_one_line(tmp_path):
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path)], env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode != 0 and done.stderr.strip() == "gpu-check: no CUDA device here"


def test_the_summary_gives_the_fraction_of_copy_bandwidth(tmp_path, monkeypatch):
    case = {"implementation": "fused", "shape": "32x256x56x56", "dtype": "float16", "mode": "forward",
            "median_ms": 1.25, "floor_median_ms": 1.0, "floor_ratio": 1.25}  # fmt: skip
    (tmp_path / "run.json").write_text(json.dumps({"meta": {}, "cases": [case, {**case, "floor_ratio": None}]}))
    (tmp_path / "exactness.json").write_text(json.dumps([{"case": "a", "ok": True}, {"case": "b", "ok": False}]))
    (tmp_path / "verify.json").write_text("[]")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "a test GPU")
    _module().summarise(tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    assert "a test GPU" in summary and "1 failed checks" in summary
    assert "| fused 32x256x56x56 float16 forward | 1.25 | 1 | 1.25 | 0.80 |" in summary
    assert summary.count("| fused") == 1
