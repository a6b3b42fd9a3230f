"""Plain-data results of ``dbench verify``, with the Holm correction. No I/O."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Sequence
from typing import Any


class Verdict(enum.StrEnum):
    """How one check came out, from worst to best.

    ``fail``: the implementation breaks its declared contract or a hard rule. ``warn``: it
    departs from a convention (p = 1 not all zeros; p = 0 or eval off by a few ulp) without
    breaking anything. ``note``: its declared contract departs from the paper (information,
    not a defect). ``pass``: exercised and right. ``skip``: not exercised, with the reason.
    """

    FAIL = "fail"
    WARN = "warn"
    NOTE = "note"
    PASS = "pass"
    SKIP = "skip"


@dataclasses.dataclass
class CheckResult:
    """One named check on one case.

    ``p_value`` is set for statistical checks (None for exact ones); their verdict is
    decided after the Holm correction, from ``adjusted_p``. ``paper_expected`` is what the
    paper's contract would give for the same statistic, where the two can differ.
    """

    check: str
    case: str
    statistic: str
    expected: Any = None
    observed: Any = None
    p_value: float | None = None
    verdict: Verdict = Verdict.PASS
    reason: str = ""
    paper_expected: Any = None
    adjusted_p: float | None = None

    @property
    def statistical(self) -> bool:
        return self.p_value is not None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


@dataclasses.dataclass
class ImplementationReport:
    """Every check of one implementation, judged against its declared contract."""

    implementation: str
    contract: dict[str, str]
    departures_from_paper: list[str]
    checks: list[CheckResult]
    paper_differences: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    duration_s: float = 0.0
    family: str = "dropblock2d"
    reference: str = "the paper"
    """Whose contract departures are measured from (the family's reference)."""

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if c.verdict is Verdict.FAIL]

    @property
    def warnings(self) -> list[CheckResult]:
        return [c for c in self.checks if c.verdict is Verdict.WARN]

    @property
    def passed(self) -> bool:
        """No check failed (warnings and notes allowed)."""
        return not self.failures

    def passed_strictly(self) -> bool:
        """No check failed and none warned (``dbench verify --strict``)."""
        return not self.failures and not self.warnings

    def count(self, verdict: Verdict) -> int:
        return sum(c.verdict is verdict for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "implementation": self.implementation,
            "family": self.family,
            "contract": self.contract,
            "departures_from_paper": self.departures_from_paper,
            "paper_differences": self.paper_differences,
            "passed": self.passed,
            "n_checks": len(self.checks),
            "n_failed": len(self.failures),
            "n_warnings": len(self.warnings),
            "duration_s": round(self.duration_s, 3),
            "notes": self.notes,
            "checks": [c.as_dict() for c in self.checks],
        }


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control under any dependence)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def apply_holm(checks: Sequence[CheckResult], alpha: float) -> None:
    """Set ``adjusted_p`` and the verdict of every statistical, non-skipped check."""
    statistical = [c for c in checks if c.statistical and c.verdict is not Verdict.SKIP]
    p_values = [c.p_value if c.p_value is not None else 1.0 for c in statistical]  # all set: statistical
    for check, adjusted in zip(statistical, holm_adjust(p_values)):
        check.adjusted_p = adjusted
        check.verdict = Verdict.FAIL if adjusted < alpha else Verdict.PASS
        if check.verdict is Verdict.PASS:
            check.reason = ""
