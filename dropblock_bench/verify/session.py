"""One ``dbench verify``: every implementation in turn, files rewritten as each finishes. No printing.

Ctrl-C stops the run; every implementation verified before it is kept, in the outcome and on disk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from dropblock_bench.registry import Implementation
from dropblock_bench.verify.engine import count_steps, verify_implementation
from dropblock_bench.verify.export import write_csv, write_json
from dropblock_bench.verify.family_engine import count_family_steps, verify_family_implementation
from dropblock_bench.verify.family_settings import FamilySettings
from dropblock_bench.verify.results import ImplementationReport
from dropblock_bench.verify.settings import VerifySettings

__all__ = ["VerifyOutcome", "steps_of", "verify_all", "verify_one"]


@dataclasses.dataclass
class VerifyOutcome:
    """The reports of the implementations verified, in order; ``interrupted`` after Ctrl-C."""

    reports: list[ImplementationReport]
    requested: int
    interrupted: bool = False

    @property
    def failed(self) -> list[ImplementationReport]:
        return [r for r in self.reports if not r.passed]

    @property
    def warned(self) -> list[ImplementationReport]:
        """Reports that passed with warnings (what ``--strict`` fails)."""
        return [r for r in self.reports if r.passed and r.warnings]


def family_settings(settings: VerifySettings) -> FamilySettings:
    """The family verifier's settings in the same mode and seed as ``settings``."""
    return FamilySettings.for_mode(quick=settings.quick, seed=settings.seed)


def steps_of(implementation: Implementation, settings: VerifySettings) -> int:
    """Progress steps :func:`verify_one` reports for ``implementation``."""
    if implementation.family == "dropblock2d":
        return count_steps(settings)
    return count_family_steps(implementation, family_settings(settings))


def verify_one(implementation: Implementation, settings: VerifySettings,
               progress: Callable[[str], None] | None = None) -> ImplementationReport:  # fmt: skip
    """Verify one implementation with its family's verifier (DropBlock2d's or the families')."""
    if implementation.family == "dropblock2d":
        return verify_implementation(implementation, settings, progress=progress)
    return verify_family_implementation(implementation, family_settings(settings), progress=progress)


def verify_all(
    implementations: Sequence[Implementation],
    settings: VerifySettings,
    *,
    json_path: Path | None = None,
    csv_path: Path | None = None,
    on_step: Callable[[str, str], None] | None = None,
) -> VerifyOutcome:
    """Verify each implementation; after each, rewrite ``json_path`` and ``csv_path`` with every
    report so far. ``on_step(name, step)`` is called before each step (see
    :func:`~dropblock_bench.verify.engine.count_steps`)."""
    outcome = VerifyOutcome([], len(implementations))
    try:
        for implementation in implementations:

            def step(description: str, name: str = implementation.name) -> None:
                if on_step:
                    on_step(name, description)

            outcome.reports.append(verify_one(implementation, settings, progress=step))
            if json_path:
                write_json(json_path, outcome.reports, settings)
            if csv_path:
                write_csv(csv_path, outcome.reports)
    except KeyboardInterrupt:
        outcome.interrupted = True
    return outcome
