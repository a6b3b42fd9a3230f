"""``dbench compare``: base vs head timing results, judged by rounds, not blocks. No printing.

The decision rule is :mod:`dropblock_bench.run.judge`'s, shared with ``dbench ab``: a case
regresses only if its estimated ratio head/base is at least ``1 + threshold`` (default 5 %)
**and** a one-sided rank test gives p below the per-case level **and** the matching interval of
the ratio lies above 1; a case whose interval lies inside ``±threshold`` is ``~``; anything
else is ``inconclusive``, with about how many rounds would decide it. The per-case level is
``alpha`` (default 0.01) divided by the number of cases compared (Bonferroni), so ``alpha``
bounds the chance that identical code fails the comparison at all **where the replicates are
independent**: paired rounds of two implementations of one run, and ``dbench ab``'s worker
pairs. The rounds of two separate runs are not (each run is one process, and a process keeps
its own luck), so there the false-alarm rate is measured, not promised
(``reports/compare-guarantees/``).

The replicates (:func:`comparison_inputs`):

- two ``dbench run --json`` files: each case's **rounds**, in the measure asked for (by default
  each round's time over the floor op ``x * c`` timed in the same round, which cancels the
  machine-wide drift between two runs; see :mod:`dropblock_bench.run.rounds`), unpaired;
- one ``dbench run --json`` file and two implementation names: the rounds of the two
  implementations, **paired** (they took turns within each round, on the same input);
- pytest-benchmark files: their raw samples (``--benchmark-save-data``), unpaired; they share
  their run's conditions, which the row notes. Without raw samples a Welch t-test on the
  summary statistics stands in (no interval, so never ``~``).

A case that fails (status ``error``) in head but not in base, whether base ran it or not, is
**failing**, which counts like a regression; one that fails in both is listed as still failing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from dropblock_bench.errors import DbenchError
from dropblock_bench.run import judge
from dropblock_bench.run.files import read_json
from dropblock_bench.run.records import case_family, case_label
from dropblock_bench.run.rounds import MEASURE_WORDS, case_round_values, check_measure


class CompareInputError(DbenchError, ValueError):
    """A file to compare is missing, malformed, or shares no case with the other."""


@dataclasses.dataclass
class Timings:
    """One case's timing in one file: its median time (ms, for display) and the replicates the
    verdict is built from (rounds in some measure, or raw samples), or, failing those, summary
    statistics."""

    key: str
    samples_ms: list[float]
    """The replicates (a name kept from older versions: they are not always milliseconds)."""
    median_ms: float
    mean_ms: float | None = None
    stddev_ms: float | None = None
    n: int = 0
    note: str = ""
    """Why the replicates are missing or weaker than rounds, for the row."""


@dataclasses.dataclass
class CaseComparison:
    """Base vs head for one case. ``ratio`` is the estimated head / base (> 1 is slower), in
    the comparison's measure; the medians are times (ms)."""

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
    verdict: str  # "regression" | "improvement" | "~" | "inconclusive"
    note: str = ""
    rounds_needed: int | None = None
    """For ``inconclusive``: about how many replicates per side would decide the case."""

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
    evidence: str = ""
    """What the verdicts were built from, in one sentence (rounds, paired or not, the measure)."""
    level: float | None = None
    """The per-case test level: ``alpha`` over the cases (and ``dbench ab``'s looks)."""
    stop: str = ""
    """How ``dbench ab``'s rounds ended; empty for files."""

    @property
    def regressions(self) -> list[CaseComparison]:
        return [c for c in self.cases if c.verdict == judge.REGRESSION]

    @property
    def inconclusive(self) -> list[CaseComparison]:
        return [c for c in self.cases if c.verdict == judge.INCONCLUSIVE]

    @property
    def failed(self) -> bool:
        """A regression or a case that now fails: what makes ``dbench compare`` exit 1."""
        return bool(self.regressions or self.failing)

    @property
    def gates(self) -> str:
        """The rule, in words: ``slower by >= 5% and p < 0.01 over 4 cases``."""
        level = f" (p < {self.level:.2g} per case)" if self.level is not None and self.level != self.alpha else ""
        return f"slower by >= {self.threshold * 100:g}% at alpha {self.alpha:g}{level}, interval of the ratio above 1"

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "alpha": self.alpha,
            "level": self.level,
            "evidence": self.evidence,
            "stop": self.stop,
            "geomean_ratio": self.geomean_ratio,
            "n_regressions": len(self.regressions),
            "n_inconclusive": len(self.inconclusive),
            "n_failing": len(self.failing),
            "failing": self.failing,
            "still_failing": self.still_failing,
            "cases": [c.as_dict() for c in self.cases],
            "only_in_base": self.only_in_base,
            "only_in_head": self.only_in_head,
            "warnings": self.warnings,
        }


# --------------------------------------------------------------------------- reading


def _from_dbench(payload: dict[str, Any], path: Path, measure: str) -> dict[str, Timings]:
    timings = {}
    for case in payload["cases"]:
        if case.get("status") != "ok":
            continue
        samples = [float(s) for s in case.get("samples_ms") or []]
        median = case.get("median_ms")
        if median is None and not samples:
            raise CompareInputError(f"{path}: case {case_label(case)} has neither samples_ms nor median_ms")
        if not (all(s > 0 for s in samples) and (median is None or float(median) > 0)):
            raise CompareInputError(f"{path}: case {case_label(case)} has a time that is not > 0 ms; is the file damaged?")
        rounds = case_round_values(case, measure)
        note = "" if rounds is not None else "the file does not say which samples belong to which round"
        timings[case_label(case)] = Timings(
            case_label(case), rounds or [], float(median) if median is not None else float(np.median(samples)),
            n=len(rounds or []), note=note,
        )  # fmt: skip
    return timings


def _errors_of(payload: Any, path: Path) -> dict[str, str]:
    """Case key -> error reason, for the cases of a ``dbench run --json`` payload that failed."""
    try:
        return {case_label(c): str(c.get("reason") or "error") for c in payload["cases"] if c.get("status") == "error"}
    except (KeyError, TypeError, AttributeError) as exc:
        raise CompareInputError(f"{path}: malformed entry ({type(exc).__name__}: {exc})") from None


def _from_pytest_benchmark(payload: dict[str, Any], path: Path) -> dict[str, Timings]:
    timings = {}
    for bench in payload["benchmarks"]:
        stats_ = bench.get("stats") or {}
        if "median" not in stats_:
            raise CompareInputError(f"{path}: benchmark {bench.get('fullname', '?')} has no stats.median")
        key = bench.get("fullname") or bench.get("name")
        samples = [float(s) * 1e3 for s in stats_.get("data") or []]
        if not (float(stats_["median"]) > 0 and all(s > 0 for s in samples)):
            raise CompareInputError(f"{path}: case {key} has a time that is not > 0 ms; is the file damaged?")
        timings[key] = Timings(
            key,
            samples,
            float(stats_["median"]) * 1e3,
            mean_ms=float(stats_["mean"]) * 1e3 if "mean" in stats_ else None,
            stddev_ms=float(stats_["stddev"]) * 1e3 if "stddev" in stats_ else None,
            n=int(stats_.get("rounds", len(samples))),
            note="" if samples else "raw samples missing (pytest-benchmark: add --benchmark-save-data)",
        )
    return timings


def _timings_of(payload: Any, path: Path, measure: str) -> tuple[str, dict[str, Timings]]:
    """(format, timings by case key) from the JSON of a dbench-run or pytest-benchmark file,
    already read from ``path``."""
    try:
        if isinstance(payload, dict) and isinstance(payload.get("cases"), list):
            return "dbench", _from_dbench(payload, path, measure)
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


# --------------------------------------------------------------------------- judging


def compare_case(base: Timings, head: Timings, threshold: float, level: float, *, paired: bool = False,
                 unit: str = "rounds") -> CaseComparison:  # fmt: skip
    """One case by :mod:`~dropblock_bench.run.judge`'s rule at the per-case ``level``:
    paired replicates (``paired``) or independent ones, or a Welch t-test on summary
    statistics where neither side has replicates."""
    note = base.note or head.note
    if len(base.samples_ms) >= 1 and len(head.samples_ms) >= 1:
        if paired:
            judgement = judge.judge_paired(base.samples_ms, head.samples_ms, threshold, level)
        else:
            judgement = judge.judge_unpaired(base.samples_ms, head.samples_ms, threshold, level, test=f"mann-whitney, {unit}")
        if judgement.verdict == judge.INCONCLUSIVE and judgement.rounds_needed:
            note = (note + "; " if note else "") + f"about {judgement.rounds_needed} {unit} per side would decide"
        return CaseComparison(key=base.key, base_median_ms=base.median_ms, head_median_ms=head.median_ms,
                              ratio=judgement.ratio, ratio_ci_low=judgement.ci_low, ratio_ci_high=judgement.ci_high,
                              p_value=judgement.p_value, n_base=judgement.n_base, n_head=judgement.n_head,
                              test=judgement.test, verdict=judgement.verdict, note=note,
                              rounds_needed=judgement.rounds_needed)  # fmt: skip
    ratio = head.median_ms / base.median_ms
    p_value: float | None = None
    test = "none"
    if (
        base.mean_ms is not None and base.stddev_ms is not None and head.mean_ms is not None and head.stddev_ms is not None
        and base.n >= 2 and head.n >= 2
    ):  # fmt: skip
        test = "welch (no raw samples)"
        slower, faster = (
            float(stats.ttest_ind_from_stats(head.mean_ms, head.stddev_ms, head.n, base.mean_ms, base.stddev_ms, base.n,
                                             equal_var=False, alternative=side).pvalue)
            for side in ("greater", "less")
        )  # fmt: skip
        p_value = slower if ratio >= 1 else faster
        verdict = judge.decide(ratio, None, None, slower, faster, threshold, level)
    else:
        verdict = judge.INCONCLUSIVE
    return CaseComparison(key=base.key, base_median_ms=base.median_ms, head_median_ms=head.median_ms, ratio=ratio,
                          ratio_ci_low=None, ratio_ci_high=None, p_value=p_value, n_base=base.n, n_head=head.n,
                          test=test, verdict=verdict, note=note or "no replicates to test")  # fmt: skip


def check_settings(threshold: float, alpha: float) -> None:
    """``--alpha`` in (0, 1) and ``--threshold`` >= 0, else a one-line error."""
    if not 0 < alpha < 1:
        raise CompareInputError(f"--alpha must be in (0, 1), got {alpha}")
    if threshold < 0:
        raise CompareInputError(f"--threshold must be >= 0, got {threshold}")


def _geomean(cases: Sequence[CaseComparison]) -> float | None:
    ratios = [c.ratio for c in cases if c.ratio > 0]
    return float(np.exp(np.mean(np.log(ratios)))) if ratios else None


def _inconclusive_warning(cases: Sequence[CaseComparison], how: str) -> list[str]:
    undecided = [c for c in cases if c.verdict == judge.INCONCLUSIVE]
    if not undecided:
        return []
    needed = [c.rounds_needed for c in undecided if c.rounds_needed]
    most = f"; about {max(needed)} per side would decide them all" if needed else ""
    return [f"{len(undecided)} case(s) inconclusive: the replicates cannot tell a change of the threshold from noise{most} ({how})"]


def only_family(payload: Any, family: str | None, path: Path) -> Any:
    """``payload`` with only ``family``'s cases (all of them for None); a file that is not a
    ``dbench run --json`` file cannot be filtered and raises :class:`CompareInputError`."""
    if family is None:
        return payload
    if not (isinstance(payload, dict) and isinstance(payload.get("cases"), list)):
        raise CompareInputError(f"--family needs `dbench run --json` files; {path} is not one")
    return {**payload, "cases": [c for c in payload["cases"] if isinstance(c, dict) and case_family(c) == family]}


def compare_files(base_path: Path, head_path: Path, threshold: float = 0.05, alpha: float = 0.01,
                  measure: str = "ratio-to-floor", family: str | None = None) -> Comparison:  # fmt: skip
    """Match cases by key and judge each by its rounds (see the module docstring), only
    ``family``'s where given; raises :class:`CompareInputError` on bad input."""
    check_settings(threshold, alpha)
    check_measure(measure)
    base_payload = only_family(read_json(base_path, CompareInputError), family, base_path)
    head_payload = only_family(read_json(head_path, CompareInputError), family, head_path)
    base_format, base = _timings_of(base_payload, base_path, measure)
    head_format, head = _timings_of(head_payload, head_path, measure)
    if base_format != head_format:
        raise CompareInputError(f"cannot compare a {base_format} file ({base_path}) with a {head_format} file ({head_path})")
    head_errors = _errors_of(head_payload, head_path) if head_format == "dbench" else {}
    base_errors = _errors_of(base_payload, base_path) if base_format == "dbench" else {}
    failing = {key: reason for key, reason in head_errors.items() if key not in base_errors}
    still_failing = {key: reason for key, reason in head_errors.items() if key in base_errors}
    common = [key for key in base if key in head]
    if not common and not failing:
        raise CompareInputError(f"{base_path} and {head_path} have no case in common (by implementation, family, shape, dtype,"
                                " device, arguments, mode)")  # fmt: skip
    level = alpha / max(1, len(common))
    unit = "rounds" if base_format == "dbench" else "samples"
    cases = [compare_case(base[key], head[key], threshold, level, unit=unit) for key in common]
    if base_format == "dbench":
        evidence = f"the rounds of two separate runs, unpaired; measure: {MEASURE_WORDS[measure]}"
        how = "dbench run --rounds N for both, or pair them with dbench ab"
    else:
        evidence = "the raw samples of two pytest-benchmark runs; samples of one run share its conditions"
        how = "more --benchmark-min-rounds, or dbench ab"
    warnings = _inconclusive_warning(cases, how)
    differences = condition_differences(base_payload, head_payload) if base_format == "dbench" else []
    if differences:
        warnings.append(
            "base and head ran under different conditions (" + "; ".join(differences) + "): a difference in time may"
            " come from those, not from the code; run both the same way (e.g. the same `dbench run --malloc`)"
        )
    return Comparison(
        cases=cases,
        only_in_base=sorted(set(base) - set(head) - set(failing)),
        only_in_head=sorted(set(head) - set(base)),
        geomean_ratio=_geomean(cases),
        threshold=threshold,
        alpha=alpha,
        warnings=warnings,
        failing=failing,
        still_failing=still_failing,
        evidence=evidence,
        level=level,
    )


def compare_implementations(run_path: Path, base_impl: str, head_impl: str, threshold: float = 0.05, alpha: float = 0.01,
                            measure: str = "ratio-to-floor", family: str | None = None) -> Comparison:  # fmt: skip
    """Two implementations of one ``dbench run --json`` file, judged by **paired** rounds: in
    each round they took turns on the same input, so round r of one pairs with round r of the
    other. Cases match on every key field but the implementation."""
    check_settings(threshold, alpha)
    check_measure(measure)
    payload = read_json(run_path, CompareInputError)
    if not (isinstance(payload, dict) and isinstance(payload.get("cases"), list)):
        raise CompareInputError(f"{run_path} is not a `dbench run --json` file (pairing implementations needs one)")
    payload = only_family(payload, family, run_path)
    by_impl: dict[str, dict[str, Mapping[str, Any]]] = {base_impl: {}, head_impl: {}}
    try:
        for flat in payload["cases"]:
            if flat.get("implementation") in by_impl and flat.get("status") == "ok":
                rest = case_label({**flat, "implementation": "*"}).removeprefix("* ")
                by_impl[flat["implementation"]][rest] = flat
    except (TypeError, AttributeError, KeyError) as exc:
        raise CompareInputError(f"{run_path}: malformed entry ({type(exc).__name__}: {exc})") from None
    for name, found in by_impl.items():
        if not found:
            names = sorted({str(c.get("implementation")) for c in payload["cases"] if isinstance(c, dict)})
            raise CompareInputError(f"{run_path} has no timed case of {name!r} (it has: {', '.join(names) or 'none'})")
    common = [key for key in by_impl[base_impl] if key in by_impl[head_impl]]
    if not common:
        raise CompareInputError(f"{base_impl!r} and {head_impl!r} share no setting in {run_path}")
    level = alpha / len(common)
    cases = []
    for key in common:
        sides = [by_impl[base_impl][key], by_impl[head_impl][key]]
        base_values, head_values = (case_round_values(flat, measure) for flat in sides)
        if base_values is None or head_values is None or len(base_values) != len(head_values):
            raise CompareInputError(f"{run_path}: {key} lacks rounds that pair up (samples_per_round); rerun with this dbench")
        timings = [Timings(f"{head_impl} vs {base_impl} {key}", v, float(flat["median_ms"]), n=len(v))
                   for v, flat in zip((base_values, head_values), sides, strict=True)]  # fmt: skip
        cases.append(compare_case(timings[0], timings[1], threshold, level, paired=True))
    return Comparison(
        cases=cases, only_in_base=sorted(set(by_impl[base_impl]) - set(common)),
        only_in_head=sorted(set(by_impl[head_impl]) - set(common)), geomean_ratio=_geomean(cases), threshold=threshold,
        alpha=alpha, warnings=_inconclusive_warning(cases, "dbench run --rounds N"),
        evidence=f"paired rounds of one run (the two took turns on one input); measure: {MEASURE_WORDS[measure]}",
        level=level,
    )  # fmt: skip


VERDICT_MARKS = {"regression": "❌ regression", "improvement": "✅ faster", "~": "~", "inconclusive": "❔ inconclusive"}


def markdown_report(comparison: Comparison, base_name: str, head_name: str, tool: str = "dbench compare") -> str:
    """A pull-request comment / ``$GITHUB_STEP_SUMMARY`` table: the headline, what the
    verdicts rest on, one row per case, failing cases, warnings."""
    regressions = comparison.regressions
    found = [f"**{len(regressions)} regression(s)**"] if regressions else []
    found += [f"**{len(comparison.failing)} case(s) now failing**"] if comparison.failing else []
    headline = (" and ".join(found) if found else "No significant regression") + f" (regression: {comparison.gates};"
    headline += " failing: raises in head, not in base)"
    if comparison.inconclusive:
        headline += f"; {len(comparison.inconclusive)} case(s) inconclusive"
    lines = [f"### {tool}: `{base_name}` → `{head_name}`", "", headline, ""]
    if comparison.evidence:
        lines += [f"Evidence: {comparison.evidence}." + (f" Rounds: {comparison.stop}." if comparison.stop else ""), ""]
    lines += ["| case | base ms | head ms | change | CI of ratio | p | n | verdict |", "|---|---:|---:|---:|---|---:|---|---|"]
    for c in comparison.cases:
        ci = f"{c.ratio_ci_low:.3f}–{c.ratio_ci_high:.3f}" if c.ratio_ci_low is not None and c.ratio_ci_high is not None else ""
        p = "" if c.p_value is None else f"{c.p_value:.2g}"
        note = f" ({c.note})" if c.note else ""
        lines.append(
            f"| `{c.key}` | {c.base_median_ms:.4g} | {c.head_median_ms:.4g} | {c.change:+.1%} | {ci} | {p} | {c.n_base}/{c.n_head} | {VERDICT_MARKS[c.verdict]}{_cell(note)} |"
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
