"""Machine-readable verify results: JSON and CSV. Pure data in, files out."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dropblock_bench.metadata import machine_meta
from dropblock_bench.verify.results import CheckResult, ImplementationReport
from dropblock_bench.verify.settings import VerifySettings

CSV_FIELDS = ["implementation", *[f.name for f in dataclasses.fields(CheckResult)]]


def verify_payload(reports: Sequence[ImplementationReport], settings: VerifySettings) -> dict[str, Any]:
    """``{"meta": {...}, "implementations": [...]}`` for ``--json``."""
    meta = machine_meta({
        "tool": "dbench verify",
        "settings": {
            "seed": settings.seed,
            "quick": settings.quick,
            "alpha": settings.alpha,
            "relative_error": settings.relative_error,
            "power": settings.power,
            "min_calls": settings.min_calls,
            "cases": [case.label for case in settings.cases],
        },
    })
    return {"meta": meta, "implementations": [report.as_dict() for report in reports]}


def write_json(path: Path, reports: Sequence[ImplementationReport], settings: VerifySettings) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(verify_payload(reports, settings), indent=2) + "\n")


def write_csv(path: Path, reports: Sequence[ImplementationReport]) -> None:
    """One row per check, with the implementation's name first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for report in reports:
            for check in report.checks:
                writer.writerow({"implementation": report.implementation, **check.as_dict()})
