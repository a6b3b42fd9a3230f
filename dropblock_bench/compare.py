"""``dbench compare``: base vs head timing results, with two gates against noise. No printing.

A case regresses only if **both** hold: the median slowed down by at least ``threshold``
(default 5 %) **and** a two-sided Mann-Whitney U test on the raw samples gives p < ``alpha``
(default 0.01), with the bootstrap interval of the median ratio (at ``1 - alpha``) agreeing,
that is lying wholly above 1. Anything else is ``~`` (no significant change), reported with p
and n, as benchstat does. Speed-ups that pass both gates are ``improvement``. A case that fails (status
``error``) in head but not in base, whether base ran it or not, is **failing**, which counts
like a regression; one that fails in both is listed as still failing.

Inputs are detected by content: ``dbench run --json`` files (cases keyed by implementation,
device, dtype, shape, block size, p, mode, in-place) and pytest-benchmark JSON files (keyed by
the test's full name; raw samples need ``--benchmark-save-data``, otherwise a Welch t-test on
the summary statistics stands in and the row says so).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from dropblock_bench.errors import DbenchError
from dropblock_bench.run.files import read_json
from dropblock_bench.run.records import case_label

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


class CompareInputError(DbenchError, ValueError):
    """A file to compare is missing, malformed, or shares no case with the other."""


@dataclasses.dataclass
class Timings:
    """One case's timing in one file: raw samples (ms) or, failing those, summary statistics."""

    key: str
    samples_ms: list[float]
    median_ms: float
    mean_ms: float | None = None
    stddev_ms: float | None = None
    n: int = 0


@dataclasses.dataclass
class CaseComparison:
    """Base vs head for one case. ``ratio`` is head median / base median (> 1 is slower)."""

    key: str
    base_median_ms: float
    head_median_ms: float
    ratio: float
    ratio_ci_low: float | None
    ratio_ci_high: float | None
    p_value: float | None
    n_base: int
    n_head: int
    test: str
    verdict: str  # "regression" | "improvement" | "~"
    note: str = ""

    @property
    def change(self) -> float:
        return self.ratio - 1.0

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "change": self.change}


@dataclasses.dataclass
class Comparison:
    cases: list[CaseComparison]
    only_in_base: list[str]
    only_in_head: list[str]
    geomean_ratio: float | None
    threshold: float
    alpha: float
    warnings: list[str]
    failing: dict[str, str] = dataclasses.field(default_factory=dict)  # key -> head's error, where base had none
    still_failing: dict[str, str] = dataclasses.field(default_factory=dict)  # key -> head's error, failing in base too

    @property
    def regressions(self) -> list[CaseComparison]:
        return [c for c in self.cases if c.verdict == "regression"]

    @property
    def failed(self) -> bool:
        """A regression or a case that now fails: what makes ``dbench compare`` exit 1."""
        return bool(self.regressions or self.failing)

    @property
    def gates(self) -> str:
        """The rule, in words: ``slower by >= 5% and Mann-Whitney p < 0.01``."""
        return f"slower by >= {self.threshold * 100:g}% and Mann-Whitney p < {self.alpha:g}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "alpha": self.alpha,
            "geomean_ratio": self.geomean_ratio,
            "n_regressions": len(self.regressions),
            "n_failing": len(self.failing),
            "failing": self.failing,
            "still_failing": self.still_failing,
            "cases": [c.as_dict() for c in self.cases],
            "only_in_base": self.only_in_base,
            "only_in_head": self.only_in_head,
            "warnings": self.warnings,
        }


# --------------------------------------------------------------------------- reading


def _from_dbench(payload: dict[str, Any], path: Path) -> dict[str, Timings]:
    timings = {}
    for case in payload["cases"]:
        if case.get("status") != "ok":
            continue
        samples = [float(s) for s in case.get("samples_ms") or []]
        median = case.get("median_ms")
        if median is None and not samples:
            raise CompareInputError(f"{path}: case {case_label(case)} has neither samples_ms nor median_ms")
        timings[case_label(case)] = Timings(
            case_label(case), samples, float(median) if median is not None else float(np.median(samples)), n=len(samples)
        )
    return timings


def _errors_of(payload: Any, path: Path) -> dict[str, str]:
    """Case key -> error reason, for the cases of a ``dbench run --json`` payload that failed."""
    try:
        return {case_label(c): str(c.get("reason") or "error") for c in payload["cases"] if c.get("status") == "error"}
    except (KeyError, TypeError, AttributeError) as exc:
        raise CompareInputError(f"{path}: malformed entry ({type(exc).__name__}: {exc})") from None


def _check_positive(timings: dict[str, Timings], path: Path) -> None:
    for key, timing in timings.items():
        if not (timing.median_ms > 0 and all(s > 0 for s in timing.samples_ms)):
            raise CompareInputError(f"{path}: case {key} has a time that is not > 0 ms; is the file damaged?")


def _from_pytest_benchmark(payload: dict[str, Any], path: Path) -> dict[str, Timings]:
    timings = {}
    for bench in payload["benchmarks"]:
        stats_ = bench.get("stats") or {}
        if "median" not in stats_:
            raise CompareInputError(f"{path}: benchmark {bench.get('fullname', '?')} has no stats.median")
        key = bench.get("fullname") or bench.get("name")
        samples = [float(s) * 1e3 for s in stats_.get("data") or []]
        timings[key] = Timings(
            key,
            samples,
            float(stats_["median"]) * 1e3,
            mean_ms=float(stats_["mean"]) * 1e3 if "mean" in stats_ else None,
            stddev_ms=float(stats_["stddev"]) * 1e3 if "stddev" in stats_ else None,
            n=int(stats_.get("rounds", len(samples))),
        )
    return timings


def _timings_of(payload: Any, path: Path) -> tuple[str, dict[str, Timings]]:
    """(format, timings by case key) from the JSON of a dbench-run or pytest-benchmark file,
    already read from ``path``."""
    try:
        if isinstance(payload, dict) and isinstance(payload.get("cases"), list):
            return "dbench", _from_dbench(payload, path)
        if isinstance(payload, dict) and isinstance(payload.get("benchmarks"), list):
            return "pytest-benchmark", _from_pytest_benchmark(payload, path)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, CompareInputError):
            raise
        raise CompareInputError(f"{path}: malformed entry ({type(exc).__name__}: {exc})") from None
    raise CompareInputError(f"{path} is neither a `dbench run --json` file nor a pytest-benchmark JSON file")


# What a `dbench run --json` time depends on besides the code, as (label, how to read it from meta).
_CONDITIONS: tuple[tuple[str, Any], ...] = (
    ("memory regime", lambda meta: str((meta.get("memory") or {}).get("malloc") or "").split(" ")[0] or None),
    ("threads", lambda meta: meta.get("threads")),
    ("CPU", lambda meta: meta.get("cpu")),
    ("torch", lambda meta: meta.get("torch_version")),
)


def condition_differences(base_payload: Any, head_payload: Any) -> list[str]:
    """The run conditions (memory regime, threads, CPU, torch version) in which two `dbench run`
    payloads differ, as "label: base vs head"; empty when they agree, when either does not
    record one, or for other formats."""
    metas = []
    for payload in (base_payload, head_payload):
        meta = payload.get("meta") if isinstance(payload, dict) else None
        metas.append(meta if isinstance(meta, dict) else {})
    differences = []
    for label, read in _CONDITIONS:
        base_value, head_value = read(metas[0]), read(metas[1])
        if base_value is not None and head_value is not None and base_value != head_value:
            differences.append(f"{label}: {base_value} vs {head_value}")
    return differences


# --------------------------------------------------------------------------- statistics


def smallest_mann_whitney_p(n_base: int, n_head: int) -> float:
    """The smallest two-sided p-value a Mann-Whitney U test can give with these sample sizes."""
    if n_base == 0 or n_head == 0:
        return 1.0
    return min(1.0, 2.0 / math.comb(n_base + n_head, n_base))


def _ratio_interval(base: np.ndarray, head: np.ndarray, confidence: float) -> tuple[float, float]:
    def ratio(b: np.ndarray, h: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(h, axis=axis) / np.median(b, axis=axis)

    with warnings.catch_warnings():  # identical samples make a degenerate (but valid) interval
        warnings.simplefilter("ignore")
        result = _bootstrap(base, head, ratio, confidence)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _bootstrap(base: np.ndarray, head: np.ndarray, ratio: Any, confidence: float) -> Any:
    return stats.bootstrap(
        (base, head),
        ratio,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        random_state=np.random.default_rng(BOOTSTRAP_SEED),
    )


def compare_case(base: Timings, head: Timings, threshold: float, alpha: float) -> CaseComparison:
    """Both gates on one case; see the module docstring."""
    ratio = head.median_ms / base.median_ms
    low = high = p_value = None
    note = ""
    if len(base.samples_ms) >= 2 and len(head.samples_ms) >= 2:
        b, h = np.asarray(base.samples_ms), np.asarray(head.samples_ms)
        test = "mann-whitney"
        p_value = float(stats.mannwhitneyu(b, h, alternative="two-sided").pvalue)
        low, high = _ratio_interval(b, h, 1 - alpha)
        n_base, n_head = len(b), len(h)
    elif (
        base.mean_ms is not None and base.stddev_ms is not None and head.mean_ms is not None and head.stddev_ms is not None
        and base.n >= 2 and head.n >= 2
    ):  # fmt: skip
        test = "welch (no raw samples)"
        p_value = float(
            stats.ttest_ind_from_stats(head.mean_ms, head.stddev_ms, head.n, base.mean_ms, base.stddev_ms, base.n, equal_var=False).pvalue
        )
        n_base, n_head = base.n, head.n
        note = "raw samples missing (pytest-benchmark: add --benchmark-save-data)"
    else:
        test = "none"
        n_base, n_head = len(base.samples_ms), len(head.samples_ms)
        note = "too few samples to test"
    significant = p_value is not None and p_value < alpha
    # The interval of the ratio must agree with the test: one that includes 1 never calls a change.
    slower_for_sure = low is None or low > 1.0
    faster_for_sure = high is None or high < 1.0
    if significant and ratio - 1.0 >= threshold and slower_for_sure:
        verdict = "regression"
    elif significant and 1.0 - ratio >= threshold / (1.0 + threshold) and faster_for_sure:
        verdict = "improvement"
    else:
        verdict = "~"
    return CaseComparison(key=base.key, base_median_ms=base.median_ms, head_median_ms=head.median_ms, ratio=ratio,
                          ratio_ci_low=low, ratio_ci_high=high, p_value=p_value, n_base=n_base, n_head=n_head,
                          test=test, verdict=verdict, note=note)  # fmt: skip


def compare_files(base_path: Path, head_path: Path, threshold: float = 0.05, alpha: float = 0.01) -> Comparison:
    """Match cases by key and compare each; raises :class:`CompareInputError` on bad input."""
    if not 0 < alpha < 1:
        raise CompareInputError(f"--alpha must be in (0, 1), got {alpha}")
    if threshold < 0:
        raise CompareInputError(f"--threshold must be >= 0, got {threshold}")
    base_payload, head_payload = read_json(base_path, CompareInputError), read_json(head_path, CompareInputError)
    base_format, base = _timings_of(base_payload, base_path)
    head_format, head = _timings_of(head_payload, head_path)
    if base_format != head_format:
        raise CompareInputError(f"cannot compare a {base_format} file ({base_path}) with a {head_format} file ({head_path})")
    _check_positive(base, base_path)
    _check_positive(head, head_path)
    head_errors = _errors_of(head_payload, head_path) if head_format == "dbench" else {}
    base_errors = _errors_of(base_payload, base_path) if base_format == "dbench" else {}
    failing = {key: reason for key, reason in head_errors.items() if key not in base_errors}
    still_failing = {key: reason for key, reason in head_errors.items() if key in base_errors}
    common = [key for key in base if key in head]
    if not common and not failing:
        raise CompareInputError(f"{base_path} and {head_path} have no case in common (by implementation, shape, dtype, device, k, p, mode)")
    cases = [compare_case(base[key], head[key], threshold, alpha) for key in common]
    warnings = []
    unreachable = [c for c in cases if c.test == "mann-whitney" and smallest_mann_whitney_p(c.n_base, c.n_head) >= alpha]
    if unreachable:
        example = unreachable[0]
        warnings.append(
            f"{len(unreachable)} case(s) have too few samples to ever reach alpha={alpha:g} (e.g. {example.key}:"
            f" n={example.n_base} vs {example.n_head}, smallest possible p {smallest_mann_whitney_p(example.n_base, example.n_head):.2g});"
            " time longer (dbench run --min-time) to detect regressions there"
        )
    differences = condition_differences(base_payload, head_payload) if base_format == "dbench" else []
    if differences:
        warnings.append(
            "base and head ran under different conditions (" + "; ".join(differences) + "): a difference in time may"
            " come from those, not from the code; run both the same way (e.g. the same `dbench run --malloc`)"
        )
    ratios = [c.ratio for c in cases if c.ratio > 0]
    geomean = float(np.exp(np.mean(np.log(ratios)))) if ratios else None
    return Comparison(
        cases=cases,
        only_in_base=sorted(set(base) - set(head) - set(failing)),
        only_in_head=sorted(set(head) - set(base)),
        geomean_ratio=geomean,
        threshold=threshold,
        alpha=alpha,
        warnings=warnings,
        failing=failing,
        still_failing=still_failing,
    )


def markdown_report(comparison: Comparison, base_name: str, head_name: str) -> str:
    """A pull-request comment / ``$GITHUB_STEP_SUMMARY`` table."""
    regressions = comparison.regressions
    found = [f"**{len(regressions)} regression(s)**"] if regressions else []
    found += [f"**{len(comparison.failing)} case(s) now failing**"] if comparison.failing else []
    headline = (" and ".join(found) if found else "No significant regression") + f" (regression: {comparison.gates};"
    headline += " failing: raises in head, not in base)"
    lines = [f"### dbench compare: `{base_name}` → `{head_name}`", "", headline, ""]
    lines += ["| case | base ms | head ms | change | CI of ratio | p | n | verdict |", "|---|---:|---:|---:|---|---:|---|---|"]
    for c in comparison.cases:
        ci = f"{c.ratio_ci_low:.3f}–{c.ratio_ci_high:.3f}" if c.ratio_ci_low is not None else ""
        p = "" if c.p_value is None else f"{c.p_value:.2g}"
        verdict = {"regression": "❌ regression", "improvement": "✅ faster", "~": "~"}[c.verdict]
        note = f" ({c.note})" if c.note else ""
        lines.append(
            f"| `{c.key}` | {c.base_median_ms:.4g} | {c.head_median_ms:.4g} | {c.change:+.1%} | {ci} | {p} | {c.n_base}/{c.n_head} | {verdict}{_cell(note)} |"
        )
    for key, reason in comparison.failing.items():
        lines.append(f"| `{key}` | | | | | | | ❌ fails in head: {_cell(reason)} |")
    for key, reason in comparison.still_failing.items():
        lines.append(f"| `{key}` | | | | | | | fails in base and head: {_cell(reason)} |")
    if comparison.geomean_ratio is not None:
        lines.append(f"| **geometric mean** | | | **{comparison.geomean_ratio - 1:+.1%}** | | | | |")
    for title, keys in (("Only in base", comparison.only_in_base), ("Only in head", comparison.only_in_head)):
        if keys:
            lines += ["", f"{title}: " + ", ".join(f"`{k}`" for k in keys)]
    lines += [f"> ⚠️ {w}" for w in comparison.warnings]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text for a markdown table cell: a ``|`` would end the cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def comparison_rows(comparison: Comparison) -> Sequence[dict[str, Any]]:
    """One row per matched case, then one per failing case (verdict ``failing`` or
    ``still failing``, the error in ``note``), all with the same columns."""
    rows = [c.as_dict() for c in comparison.cases]
    columns = [field.name for field in dataclasses.fields(CaseComparison)] + ["change"]
    for verdict, failures in (("failing", comparison.failing), ("still failing", comparison.still_failing)):
        rows += [{**dict.fromkeys(columns), "key": key, "verdict": verdict, "note": reason} for key, reason in failures.items()]
    return rows


def write_comparison(comparison: Comparison, *, csv_path: Path | None = None, json_path: Path | None = None) -> None:
    """Write :func:`comparison_rows` as CSV and :meth:`Comparison.as_dict` as JSON, where asked."""
    if csv_path:
        import csv

        rows = comparison_rows(comparison)
        with csv_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["key"])
            writer.writeheader()
            writer.writerows(rows)
    if json_path:
        import json

        json_path.write_text(json.dumps(comparison.as_dict(), indent=1) + "\n")
