"""Verdicts and the Holm correction over a report's statistical checks."""

from __future__ import annotations

import pytest

from dropblock_bench.verify import Verdict
from dropblock_bench.verify.results import CheckResult, apply_holm, holm_adjust


def test_holm_matches_its_definition():
    assert holm_adjust([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm_adjust([]) == []


def test_holm_decides_verdicts_of_statistical_checks_only():
    checks = [
        CheckResult("a", "-", "-", p_value=0.001),
        CheckResult("b", "-", "-", p_value=0.004),
        CheckResult("c", "-", "-", verdict=Verdict.FAIL, reason="exact"),
        CheckResult("d", "-", "-", p_value=0.2, reason="would be shown if failed"),
    ]
    apply_holm(checks, alpha=0.01)
    assert [c.verdict for c in checks] == [Verdict.FAIL, Verdict.FAIL, Verdict.FAIL, Verdict.PASS]
    assert checks[3].reason == ""
