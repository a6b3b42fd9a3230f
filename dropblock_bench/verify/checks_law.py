"""The law of the mask, per case: drop rate, dispersion, position map, block shape.

All four compare an implementation's masks with the exact consequences of its declared
contract (:mod:`dropblock_bench.spec`).
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
from dropblock_bench.verify.sampling import derive_seed, sample_drop_masks
from dropblock_bench.verify.settings import Case

LAW_CHECKS = (
    ("rate", "mean rate"),
    ("dispersion", "sd per map"),
    ("position", "worst pos."),
    ("blocks", "bad maps"),
)


def law_checks(
    impl: Implementation, fn: DropBlockFn, case: Case, maps: int, seed: int, device: str = "cpu"
) -> list[CheckResult]:
    """Rate, dispersion, position and block-shape checks of ``maps`` sampled maps."""
    contract = impl.contract
    try:
        masks = sample_drop_masks(impl, fn, case, maps, derive_seed(seed, "law"), device)
    except Exception as exc:  # noqa: BLE001 - report, do not abort the run
        reason = describe_exception(exc)
        return [CheckResult(check, case.label, stat, verdict=Verdict.FAIL, reason=reason) for check, stat in LAW_CHECKS]
    generator = torch.Generator().manual_seed(derive_seed(seed, "reference", case.label))
    reference = spec.reference_drop_mask(
        contract, (maps, 1, case.height, case.width), case.p, case.block_size, generator=generator
    )[:, 0]
    return [
        rate_check(contract, case, masks),
        dispersion_check(contract, case, masks, reference),
        position_check(contract, case, masks),
        blocks_check(contract, case, masks),
    ]


def rate_check(contract: spec.Contract, case: Case, masks: torch.Tensor) -> CheckResult:
    """z-test of the mean per-map drop rate against the exact rate, with the exact variance."""
    h, w, k, p = case.height, case.width, case.block_size, case.p
    maps = masks.shape[0]
    expected = spec.expected_drop_rate(contract, p, h, w, k)
    paper = spec.expected_drop_rate(spec.PAPER_CONTRACT, p, h, w, k)
    observed = masks.double().mean().item()
    sd = math.sqrt(spec.drop_count_variance(contract, p, h, w, k)) / (h * w)
    if sd == 0.0:
        p_value = 1.0 if math.isclose(observed, expected, abs_tol=1e-12) else 0.0
        z = 0.0
    else:
        z = (observed - expected) / (sd / math.sqrt(maps))
        p_value = float(2 * stats.norm.sf(abs(z)))
    return CheckResult(
        "rate",
        case.label,
        "mean rate",
        expected=round(expected, 5),
        observed=round(observed, 5),
        p_value=p_value,
        paper_expected=round(paper, 5),
        reason=f"drops {observed:.4f} where its contract expects {expected:.4f} (z = {z:+.1f}, {maps} maps)",
    )


MIN_POOLED_PER_BIN = 20  # pooled count per bin, so each expected cell count is >= 5 or so


def _bin_edges(pooled: np.ndarray) -> np.ndarray:
    """Merge consecutive count values until every bin holds enough pooled maps."""
    values, frequency = np.unique(pooled, return_counts=True)
    edges, running = [values[0]], 0
    for value, count in zip(values, frequency):
        if running >= MIN_POOLED_PER_BIN:
            edges.append(value)
            running = 0
        running += count
    if running < MIN_POOLED_PER_BIN and len(edges) > 1:
        edges.pop()  # fold a thin last bin into the previous one
    return np.asarray([*edges, values[-1] + 1])


def dispersion_check(contract: spec.Contract, case: Case, masks: torch.Tensor, reference: torch.Tensor) -> CheckResult:
    """Chi-square test of homogeneity between the per-map drop-count distributions of the
    implementation and of the exact reference sampler (counts binned so no cell is thin).

    Catches a right mean with the wrong spread or shape; the sd is shown as the summary.
    """
    counts = masks.flatten(1).sum(1).numpy()
    reference_counts = reference.flatten(1).sum(1).numpy()
    exact_sd = math.sqrt(spec.drop_count_variance(contract, case.p, case.height, case.width, case.block_size))
    observed_sd = float(np.std(counts, ddof=1))
    edges = _bin_edges(np.concatenate([counts, reference_counts]))
    table = np.stack([np.histogram(counts, edges)[0], np.histogram(reference_counts, edges)[0]])
    table = table[:, table.sum(0) > 0]
    p_value = 1.0 if table.shape[1] < 2 else float(stats.chi2_contingency(table, correction=False).pvalue)
    return CheckResult(
        "dispersion",
        case.label,
        "sd per map",
        expected=round(exact_sd, 3),
        observed=round(observed_sd, 3),
        p_value=p_value,
        reason=(
            f"per-map drop counts are distributed unlike the contract's (sd {observed_sd:.2f} vs {exact_sd:.2f},"
            f" chi-square over {table.shape[1]} bins)"
        ),
    )


def position_check(contract: spec.Contract, case: Case, masks: torch.Tensor) -> CheckResult:
    """Exact binomial test at every position, Bonferroni over positions (valid under any correlation)."""
    maps = masks.shape[0]
    counts = masks.sum(0).double().numpy().ravel()
    probability = spec.drop_probability_map(contract, case.p, case.height, case.width, case.block_size).numpy().ravel()
    lower = stats.binom.cdf(counts, maps, probability)
    upper = stats.binom.sf(counts - 1, maps, probability)
    per_position = np.minimum(1.0, 2 * np.minimum(lower, upper))
    worst = int(np.argmin(per_position))
    p_value = float(min(1.0, per_position[worst] * per_position.size))
    row, col = divmod(worst, case.width)
    frequency = counts[worst] / maps
    return CheckResult(
        "position",
        case.label,
        "worst pos.",
        expected=f"({row},{col}) {probability[worst]:.4f}",
        observed=f"({row},{col}) {frequency:.4f}",
        p_value=p_value,
        reason=(
            f"position ({row}, {col}) is dropped in {frequency:.4f} of maps where the contract says"
            f" {probability[worst]:.4f}: seeds or blocks are misplaced"
        ),
    )


def blocks_check(contract: spec.Contract, case: Case, masks: torch.Tensor) -> CheckResult:
    """Every dropped unit lies in a fully dropped block the contract allows. Exact."""
    explained = spec.explained_by_blocks(contract, masks, case.block_size)
    bad = int((~explained).sum())
    where = "inside the map" if contract.seeds is spec.SeedRegion.VALID else "(cut at the border allowed)"
    k = spec.painted_block_size(contract, case.height, case.width, case.block_size)
    return CheckResult(
        "blocks",
        case.label,
        "bad maps",
        expected=0,
        observed=bad,
        verdict=Verdict.PASS if bad == 0 else Verdict.FAIL,
        reason="" if bad == 0 else f"{bad} of {masks.shape[0]} maps drop units outside any whole {k}x{k} block {where}",
    )
