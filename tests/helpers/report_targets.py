"""``reports/targets.py`` as a module (it is a script, not part of the package): the targets'
bounds and the table that reports them, for the bench and for its own tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "reports" / "targets.py"
_spec = importlib.util.spec_from_file_location("report_targets_script", SCRIPT)
targets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(targets)
