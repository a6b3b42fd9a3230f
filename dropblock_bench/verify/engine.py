"""Orchestrates the checks of one implementation and applies the Holm correction. No printing."""

from __future__ import annotations

import time
from collections.abc import Callable

from dropblock_bench import spec
from dropblock_bench.registry import Implementation
from dropblock_bench.verify.checks_api import api_checks, load_failure
from dropblock_bench.verify.checks_law import law_checks
from dropblock_bench.verify.checks_structure import (
    gradient_check,
    half_precision_checks,
    independence_and_mean_checks,
    scale_check,
)
from dropblock_bench.verify.results import CheckResult, ImplementationReport, Verdict, apply_holm
from dropblock_bench.verify.settings import Case, VerifySettings

ProgressCallback = Callable[[str], None]
"""Called with a description before each step; ``count_steps`` says how many come."""

STRUCTURE_STEPS = 4


def count_steps(settings: VerifySettings) -> int:
    """Steps :func:`verify_implementation` reports through its progress callback."""
    return 1 + len(settings.cases) + STRUCTURE_STEPS


def pick_device(impl: Implementation) -> str | None:
    """CPU where the implementation runs there, else CUDA when present, else None."""
    if "cpu" in impl.devices:
        return "cpu"
    import torch

    return "cuda" if "cuda" in impl.devices and torch.cuda.is_available() else None


FIELD_MEANINGS = {
    "mask": {"shared": "one mask per sample for all its channels"},
    "seeds": {"anywhere": "seeds anywhere on the map, blocks cut at the border"},
    "gamma": {"naive": "seed probability p / k², not the paper's formula"},
    "norm": {
        "sample": "kept units rescaled per sample",
        "expected": "kept units rescaled by 1 / (1 - expected rate)",
        "none": "kept units not rescaled",
    },
    "anchor": {
        "up-left": "even blocks reach one further up and left",
        "down-right": "the seed is the block's top-left corner",
    },
    "clamp": {"per-axis": "a block larger than the map is clamped per axis, to min(k, H) x min(k, W)"},
    "batch": {"shared": "one mask for the whole batch"},
}


def paper_notes(contract: spec.Contract, settings: VerifySettings) -> list[CheckResult]:
    """``note`` results: each field of the declared contract that departs from the paper, and
    each case where that changes the exact drop rate, with the size."""
    notes = []
    for field in contract.departures_from_paper():
        value, paper = str(getattr(contract, field)), str(getattr(spec.PAPER_CONTRACT, field))
        meaning = FIELD_MEANINGS.get(field, {}).get(value, "")
        notes.append(
            CheckResult(
                f"paper.{field}", "-", "contract", expected=paper, observed=value, verdict=Verdict.NOTE,
                reason=f"{field}={value}: {meaning}" if meaning else f"{field}={value} (the paper: {paper})",
            )
        )
    for case in settings.cases:
        line = rate_departure(contract, case)
        if line:
            notes.append(CheckResult("paper.rate", case.label, "exact rate", verdict=Verdict.NOTE, reason=line))
    return notes


def rate_departure(contract: spec.Contract, case: Case) -> str | None:
    """How the contract's exact drop rate on ``case`` departs from the paper's, or None where
    they agree (within 0.1 %)."""
    args = (case.p, case.height, case.width, case.block_size)
    ours, paper = spec.expected_drop_rate(contract, *args), spec.expected_drop_rate(spec.PAPER_CONTRACT, *args)
    if abs(ours - paper) <= 1e-3 * paper:
        return None
    return f"its contract drops {ours:.4f} on average where the paper's drops {paper:.4f} ({(ours - paper) / paper:+.0%})"


def paper_differences(contract: spec.Contract, settings: VerifySettings) -> list[str]:
    """Where the contract's expected drop rate departs from the paper's, one line per case."""
    return [f"{case.label}: {line}" for case in settings.cases if (line := rate_departure(contract, case))]


def verify_implementation(
    impl: Implementation, settings: VerifySettings | None = None, progress: ProgressCallback | None = None
) -> ImplementationReport:
    """Judge ``impl`` against its declared contract; return every check with its verdict."""
    settings = settings or VerifySettings()
    step = progress or (lambda description: None)
    started = time.perf_counter()
    report = ImplementationReport(
        implementation=impl.name,
        contract=impl.dropblock_contract.as_dict(),
        departures_from_paper=list(impl.dropblock_contract.departures_from_paper()),
        checks=paper_notes(impl.dropblock_contract, settings),
        paper_differences=paper_differences(impl.dropblock_contract, settings),
    )
    if settings.quick:
        report.notes.append("quick mode: fewer cases and smaller samples, so less power")
    device = pick_device(impl)
    fn, failure = load_failure(impl, None if device else f"runs on {', '.join(impl.devices)}; none of them is available here")
    if fn is None or device is None:
        report.checks += [failure] if failure else []
        report.duration_s = time.perf_counter() - started
        return report

    step("API")
    report.checks += api_checks(impl, fn, settings.seed, device)
    weakest = 1.0
    for case in settings.cases:
        step(f"law {case.label}")
        maps = settings.maps_for(impl.dropblock_contract, case)
        weakest = min(weakest, settings.power_reached(impl.dropblock_contract, case, maps))
        report.checks += law_checks(impl, fn, case, maps, settings.min_calls, settings.seed, device)
    step("independence")
    report.checks += independence_and_mean_checks(impl, fn, settings.structure_samples, settings.seed, device)
    step("normalisation")
    report.checks.append(scale_check(impl, fn, settings.seed, device))
    step("gradient")
    report.checks.append(gradient_check(impl, fn, settings.seed, device))
    step("half precision")
    report.checks += half_precision_checks(impl, fn, settings.seed, device)

    apply_holm(report.checks, settings.alpha)
    report.notes.append(
        f"power: a {settings.relative_error:.0%} rate error is caught with probability >= {weakest:.3f}"
        f" in every case; a defect in 1 call of 5 is missed with probability <= {settings.intermittent_miss_probability():.0e};"
        f" false alarms <= {settings.alpha:g} (Holm)"
    )
    report.duration_s = time.perf_counter() - started
    return report
