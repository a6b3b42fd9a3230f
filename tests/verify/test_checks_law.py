"""The law checks on masks drawn from the exact sampler (:func:`spec.reference_drop_mask`):
right masks pass with uniform p-values, masks with one property broken fail on that property."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from dropblock_bench import spec
from dropblock_bench.verify import Verdict, VerifySettings
from dropblock_bench.verify.checks_law import blocks_check, dispersion_check, position_check, rate_check
from dropblock_bench.verify.settings import DEFAULT_CASES, Case

DEFAULT = VerifySettings()
PAPER = spec.PAPER_CONTRACT
CASES = (Case(14, 14, 7, 0.1), Case(9, 13, 4, 0.3))
MAPS = 4000


def _masks(case: Case, maps: int, seed: int, p: float | None = None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (maps, 1, case.height, case.width)
    return spec.reference_drop_mask(PAPER, shape, case.p if p is None else p, case.block_size, generator=generator)[:, 0]


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_right_masks_give_uniform_p_values(case):
    """Under the contract each check's p-value is uniform (position's, Bonferroni-corrected, at
    most so): below 0.1 in at most a tenth of 100 trials, within a 99.9 % binomial band."""
    trials = 100
    low, high = stats.binom.interval(0.999, trials, 0.1)
    below = {"rate": 0, "dispersion": 0, "position": 0}
    for trial in range(trials):
        masks, reference = _masks(case, MAPS, 2 * trial), _masks(case, MAPS, 2 * trial + 1)
        below["rate"] += rate_check(PAPER, case, masks).p_value < 0.1
        below["dispersion"] += dispersion_check(PAPER, case, masks, reference).p_value < 0.1
        below["position"] += position_check(PAPER, case, masks).p_value < 0.1
        assert blocks_check(PAPER, case, masks).verdict is Verdict.PASS
    assert low <= below["rate"] <= high and low <= below["dispersion"] <= high
    assert below["position"] <= high


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_each_check_names_the_property_that_broke(case):
    masks, reference = _masks(case, MAPS, 1), _masks(case, MAPS, 2)
    level = DEFAULT.bonferroni_level
    # Wrong spread, about the right mean: every other map empty, its partner holding two maps' blocks.
    lumped = masks.clone()
    lumped[0::2] |= lumped[1::2]
    lumped[1::2] = False
    assert dispersion_check(PAPER, case, lumped, reference).p_value < level
    # Misplaced blocks: every mask moved one column right (the last column wraps to the first).
    shifted = position_check(PAPER, case, torch.roll(masks, 1, dims=2))
    assert shifted.p_value < level and "misplaced" in shifted.reason
    # A lone dropped unit is no block.
    stray = masks.clone()
    stray[0] = False
    stray[0, 0, 0] = True
    bad = blocks_check(PAPER, case, stray)
    assert bad.verdict is Verdict.FAIL and bad.observed == 1


def test_power_formula_against_simulation():
    """rate_check on masks from the exact sampler whose rate is 10 % too high (p raised until
    the exact rate is 1.1x) rejects as often as power_reached says, within a 99.9 % binomial
    band. At power 0.5 the shift sits at the rejection bound, where the larger spread of the
    raised rate does not move the rejection rate."""
    case = DEFAULT_CASES[0]
    settings = VerifySettings(power=0.5)
    contract = spec.PAPER_CONTRACT
    maps = settings.maps_for(contract, case)
    target = 1.1 * spec.expected_drop_rate(contract, case.p, case.height, case.width, case.block_size)
    low_p, high_p = case.p, 1.0
    for _ in range(60):  # bisection: the exact rate increases with p
        mid = (low_p + high_p) / 2
        if spec.expected_drop_rate(contract, mid, case.height, case.width, case.block_size) < target:
            low_p = mid
        else:
            high_p = mid
    generator = torch.Generator().manual_seed(3)
    trials, hits = 200, 0
    for _ in range(trials):
        masks = spec.reference_drop_mask(contract, (maps, 1, case.height, case.width), high_p, case.block_size, generator=generator)
        hits += rate_check(contract, case, masks[:, 0]).p_value < settings.bonferroni_level
    low, high = stats.binom.interval(0.999, trials, settings.power_reached(contract, case, maps))
    assert low <= hits <= high
    # At the right rate, p-values are uniform: below 0.1 in a tenth of trials, within the band.
    below = sum(
        rate_check(contract, case, spec.reference_drop_mask(contract, (maps, 1, case.height, case.width), case.p,
                                                            case.block_size, generator=generator)[:, 0]).p_value < 0.1
        for _ in range(trials)
    )  # fmt: skip
    low, high = stats.binom.interval(0.999, trials, 0.1)
    assert low <= below <= high
