"""``dbench verify``: statistical correctness of a DropBlock against the exact math of its contract.

Plain-Python API, no printing::

    from dropblock_bench.verify import VerifySettings, verify_implementation
    report = verify_implementation(get_implementation("paper"), VerifySettings())
    report.passed, [c.check for c in report.failures]
"""

from dropblock_bench.verify.engine import count_steps, verify_implementation
from dropblock_bench.verify.results import CheckResult, ImplementationReport, Verdict, holm_adjust
from dropblock_bench.verify.settings import DEFAULT_CASES, QUICK_CASES, Case, VerifySettings

__all__ = [
    "DEFAULT_CASES",
    "QUICK_CASES",
    "Case",
    "CheckResult",
    "ImplementationReport",
    "Verdict",
    "VerifySettings",
    "count_steps",
    "holm_adjust",
    "verify_implementation",
]
