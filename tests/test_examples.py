"""Every file in examples/ runs: the plugin, the file.py:callable, the training loop, the user's suite."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dropblock_bench.cli import app
from dropblock_bench.registry import Implementation
from dropblock_bench.testing import assert_dropblock

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PLUGIN = EXAMPLES / "plugin"


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_is_exercised_here():
    exercised = {"README.md", "plugin", "my_dropblock.py", "train_scheduled.py", "test_my_dropblock.py"}
    present = {path.name for path in EXAMPLES.iterdir() if path.name != "__pycache__"}
    assert present <= exercised, f"examples without a test in {Path(__file__).name}: {sorted(present - exercised)}"


def test_plugin_declares_its_record_by_entry_point():
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    entry_points = project["entry-points"]["dropblock_bench.implementations"]
    assert entry_points == {"example-dropblock": "dbench_example_plugin.records:IMPLEMENTATION"}


def test_plugin_record_module_imports_no_torch():
    code = "import sys, dbench_example_plugin.records; sys.exit('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=PLUGIN, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr or "dbench_example_plugin.records imports torch"


def test_plugin_implementation_keeps_its_contract(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(PLUGIN))  # as if installed: its target is imported by name
    record = importlib.import_module("dbench_example_plugin.records").IMPLEMENTATION
    assert isinstance(record, Implementation)
    assert record.name == "example-dropblock"
    assert_dropblock(record, quick=True)


def test_my_dropblock_verifies_through_the_cli(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(
        app, ["verify", "--impl", "examples/my_dropblock.py:drop", "--quick"], env={"COLUMNS": "120"}
    )
    assert result.exit_code == 0, result.output
    assert "1 passed" in result.output


def test_train_scheduled_ramps_p_to_its_target():
    train = _load(EXAMPLES / "train_scheduled.py")
    assert train.main(steps=6, ramp_length=4) == pytest.approx(0.1)
    assert train.main(steps=2, ramp_length=4) == pytest.approx(0.05)


@pytest.mark.slow
def test_users_test_suite_passes():
    suite = "examples/test_my_dropblock.py"
    command = [sys.executable, "-m", "pytest", suite, "--dbench-quick", "-p", "no:cacheprovider", "-q"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
