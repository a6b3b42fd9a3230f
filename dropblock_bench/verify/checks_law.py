"""The law of the mask, per case: drop rate, dispersion, position map, block shape.

All four compare an implementation's masks with the exact consequences of its declared
contract (:mod:`dropblock_bench.spec`). The maps come from many calls, and each statistical
check treats the call as its unit wherever maps of one call may be dependent: the rate and
dispersion tests divide by the larger of the exact standard error and the one measured
between calls, and the position test shrinks its sample by the design effect measured
between calls. Maps that one call made dependent (a mask shared by the whole batch) are
therefore never counted as independent evidence, while independent maps lose nothing.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

from dropblock_bench import spec
from dropblock_bench.registry import DropBlockFn, Implementation
from dropblock_bench.verify.checks_api import describe_exception
from dropblock_bench.verify.results import CheckResult, Verdict
from dropblock_bench.verify.sampling import CaseSample, derive_seed, sample_case
from dropblock_bench.verify.settings import Case

LAW_CHECKS = (
    ("rate", "mean rate"),
    ("dispersion", "sd per map"),
    ("position", "worst pos."),
    ("blocks", "bad maps"),
)
REFERENCE_MAPS = 20_000
"""Largest number of exact reference maps drawn to measure the spread of a dispersion statistic."""


def law_checks(
    impl: Implementation, fn: DropBlockFn, case: Case, maps: int, min_calls: int, seed: int, device: str = "cpu"
) -> list[CheckResult]:
    """Rate, dispersion, position and block-shape checks of at least ``maps`` maps drawn
    over at least ``min_calls`` calls."""
    contract = impl.dropblock_contract
    try:
        sample = sample_case(impl, fn, case, maps, min_calls, derive_seed(seed, "law"), device)
    except Exception as exc:  # noqa: BLE001 - report, do not abort the run
        reason = describe_exception(exc)
        return [CheckResult(check, case.label, stat, verdict=Verdict.FAIL, reason=reason) for check, stat in LAW_CHECKS]
    if sample.nonfinite_maps:
        reason = (
            f"{sample.nonfinite_maps} of {sample.maps} maps hold NaN or infinite outputs for an all-ones input"
            f" ({sample.calls} calls)"
        )
        return [
            CheckResult(check, case.label, stat, expected="finite", observed="NaN/inf", verdict=Verdict.FAIL, reason=reason)
            for check, stat in LAW_CHECKS
        ]
    generator = torch.Generator().manual_seed(derive_seed(seed, "reference", case.label))
    reference = spec.reference_drop_mask(
        contract.replace(batch="per-sample"),
        (min(sample.maps, REFERENCE_MAPS), 1, case.height, case.width),
        case.p,
        case.block_size,
        generator=generator,
    )[:, 0]
    return [
        rate_check(contract, case, sample),
        dispersion_check(contract, case, sample, reference),
        position_check(contract, case, sample),
        blocks_check(contract, case, sample.masks),
    ]


def cluster_standard_error(values: np.ndarray, call_of_map: np.ndarray) -> float:
    """Standard error of ``values.mean()`` with the call as the unit (the cluster-robust
    sandwich estimator): valid whatever the dependence between maps of one call."""
    calls = int(call_of_map.max()) + 1
    if calls < 2:
        return 0.0
    total = values.size
    residual = np.bincount(call_of_map, weights=values - values.mean(), minlength=calls)
    return math.sqrt(calls / (calls - 1) * float(np.sum(residual**2))) / total


def _two_sided_z(observed: float, expected: float, standard_error: float) -> tuple[float, float]:
    if standard_error <= 0.0:
        same = math.isclose(observed, expected, rel_tol=1e-9, abs_tol=1e-12)
        return 0.0, 1.0 if same else 0.0
    z = (observed - expected) / standard_error
    return z, float(2 * stats.norm.sf(abs(z)))


def rate_check(contract: spec.Contract, case: Case, sample: CaseSample) -> CheckResult:
    """z-test of the mean per-map drop rate against the exact rate. Its standard error is the
    larger of the exact one (independent maps) and the one measured between calls."""
    h, w, k, p = case.height, case.width, case.block_size, case.p
    expected = spec.expected_drop_rate(contract, p, h, w, k)
    paper = spec.expected_drop_rate(spec.PAPER_CONTRACT, p, h, w, k)
    per_map = sample.masks.flatten(1).double().mean(1).numpy()
    observed = float(per_map.mean())
    exact = math.sqrt(spec.drop_count_variance(contract, p, h, w, k)) / (h * w) / math.sqrt(sample.maps)
    between = cluster_standard_error(per_map, sample.call_of_map.numpy())
    z, p_value = _two_sided_z(observed, expected, max(exact, between))
    return CheckResult(
        "rate",
        case.label,
        "mean rate",
        expected=round(expected, 5),
        observed=round(observed, 5),
        p_value=p_value,
        paper_expected=round(paper, 5),
        reason=(
            f"drops {observed:.4f} where its contract expects {expected:.4f}"
            f" (z = {z:+.1f}, {sample.maps} maps from {sample.calls} calls)"
        ),
    )


def dispersion_check(contract: spec.Contract, case: Case, sample: CaseSample, reference: torch.Tensor) -> CheckResult:
    """z-test of the mean squared deviation of per-map drop counts from the exact mean against
    the exact variance: catches a right mean with the wrong spread. The standard error is the
    larger of the one the exact reference sampler shows and the one between calls."""
    h, w, k, p = case.height, case.width, case.block_size, case.p
    mean = spec.expected_drop_rate(contract, p, h, w, k) * h * w
    variance = spec.drop_count_variance(contract, p, h, w, k)
    squared = (sample.masks.flatten(1).sum(1).double().numpy() - mean) ** 2
    reference_squared = (reference.flatten(1).sum(1).double().numpy() - mean) ** 2
    exact = float(np.std(reference_squared, ddof=1)) / math.sqrt(sample.maps) if reference_squared.size > 1 else 0.0
    between = cluster_standard_error(squared, sample.call_of_map.numpy())
    observed = float(squared.mean())
    _, p_value = _two_sided_z(observed, variance, max(exact, between))
    observed_sd, exact_sd = math.sqrt(observed), math.sqrt(variance)
    return CheckResult(
        "dispersion",
        case.label,
        "sd per map",
        expected=round(exact_sd, 3),
        observed=round(observed_sd, 3),
        p_value=p_value,
        reason=(
            f"per-map drop counts spread with sd {observed_sd:.2f} units around the contract's mean"
            f" where its contract gives {exact_sd:.2f}"
        ),
    )


def design_effect(masks: torch.Tensor, call_of_map: torch.Tensor, calls: int) -> float:
    """How many times more the per-position drop counts vary between calls than independent
    maps would: ``sum over calls and positions (C - g q)**2 / sum g q (1 - q)``, with ``C`` a
    call's count at a position, ``g`` its maps and ``q`` the observed frequency. At least 1."""
    flat = masks.flatten(1).double()
    per_call = torch.zeros((calls, flat.shape[1]), dtype=torch.float64).index_add_(0, call_of_map, flat)
    maps_per_call = torch.bincount(call_of_map, minlength=calls).double()
    frequency = flat.mean(0)
    spread = float(((per_call - maps_per_call[:, None] * frequency) ** 2).sum())
    binomial = float(maps_per_call.sum() * (frequency * (1 - frequency)).sum())
    return max(1.0, spread / binomial) if binomial > 0 else 1.0


def position_check(contract: spec.Contract, case: Case, sample: CaseSample) -> CheckResult:
    """Exact binomial test at every position, Bonferroni over positions (valid under any
    correlation between positions), on the sample shrunk by the design effect between calls."""
    maps = sample.maps
    deff = design_effect(sample.masks, sample.call_of_map, sample.calls)
    counts = sample.masks.sum(0).double().numpy().ravel()
    probability = spec.drop_probability_map(contract, case.p, case.height, case.width, case.block_size).numpy().ravel()
    effective_maps = max(1, round(maps / deff))
    effective_counts = np.minimum(np.round(counts / deff), effective_maps)
    lower = stats.binom.cdf(effective_counts, effective_maps, probability)
    upper = stats.binom.sf(effective_counts - 1, effective_maps, probability)
    per_position = np.minimum(1.0, 2 * np.minimum(lower, upper))
    worst = int(np.argmin(per_position))
    p_value = float(min(1.0, per_position[worst] * per_position.size))
    row, col = divmod(worst, case.width)
    frequency = counts[worst] / maps
    shrunk = f"; calls vary {deff:.1f}x more than independent maps" if deff > 1.5 else ""
    return CheckResult(
        "position",
        case.label,
        "worst pos.",
        expected=f"({row},{col}) {probability[worst]:.4f}",
        observed=f"({row},{col}) {frequency:.4f}",
        p_value=p_value,
        reason=(
            f"position ({row}, {col}) is dropped in {frequency:.4f} of maps where the contract says"
            f" {probability[worst]:.4f}: seeds or blocks are misplaced{shrunk}"
        ),
    )


def blocks_check(contract: spec.Contract, case: Case, masks: torch.Tensor) -> CheckResult:
    """Every dropped unit lies in a fully dropped block the contract allows. Exact."""
    explained = spec.explained_by_blocks(contract, masks, case.block_size)
    bad = int((~explained).sum())
    where = "inside the map" if contract.seeds is spec.SeedRegion.VALID else "(cut at the border allowed)"
    kh, kw = spec.painted_block_shape(contract, case.height, case.width, case.block_size)
    anchor = "" if contract.anchor is spec.Anchor.CENTRE else f" anchored {contract.anchor}"
    return CheckResult(
        "blocks",
        case.label,
        "bad maps",
        expected=0,
        observed=bad,
        verdict=Verdict.PASS if bad == 0 else Verdict.FAIL,
        reason="" if bad == 0 else f"{bad} of {masks.shape[0]} maps drop units outside any whole {kh}x{kw} block{anchor} {where}",
    )
