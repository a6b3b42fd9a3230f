"""``reports/targets.py`` and ``reports/family_targets.py`` as modules (they are scripts, not
part of the package): the targets' bounds and the tables that report them, for the bench and
for their own tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "reports" / "targets.py"
_spec = importlib.util.spec_from_file_location("report_targets_script", SCRIPT)
targets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(targets)

FAMILY_SCRIPT = SCRIPT.parent / "family_targets.py"
_family_spec = importlib.util.spec_from_file_location("report_family_targets_script", FAMILY_SCRIPT)
family_targets = importlib.util.module_from_spec(_family_spec)
_family_spec.loader.exec_module(family_targets)
