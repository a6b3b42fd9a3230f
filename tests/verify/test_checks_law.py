"""The law checks on masks drawn from the exact sampler (:func:`spec.reference_drop_mask`):
right masks pass with uniform p-values, masks with one property broken fail on that property."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from dropblock_bench import spec
from dropblock_bench.verify import Verdict, VerifySettings
from dropblock_bench.verify.checks_law import blocks_check, dispersion_check, position_check, rate_check
from dropblock_bench.verify.sampling import CaseSample
from dropblock_bench.verify.settings import DEFAULT_CASES, Case

DEFAULT = VerifySettings()
PAPER = spec.PAPER_CONTRACT
CASES = (Case(14, 14, 7, 0.1), Case(9, 13, 4, 0.3))
MAPS = 4000
CALLS = 64


def _masks(case: Case, maps: int, seed: int, p: float | None = None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (maps, 1, case.height, case.width)
    return spec.reference_drop_mask(PAPER, shape, case.p if p is None else p, case.block_size, generator=generator)[:, 0]


def _in_calls(masks: torch.Tensor, calls: int = CALLS) -> CaseSample:
    """``masks`` as if drawn over ``calls`` calls of equal size (consecutive maps share a call)."""
    owner = torch.arange(masks.shape[0]) * calls // masks.shape[0]
    return CaseSample(masks, owner, calls, 0)


def _batch_shared(case: Case, calls: int, per_call: int, seed: int) -> CaseSample:
    """Right maps, but every call repeats one map ``per_call`` times (a batch-shared mask)."""
    distinct = _masks(case, calls, seed)
    return CaseSample(distinct.repeat_interleave(per_call, 0), torch.arange(calls).repeat_interleave(per_call), calls, 0)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_right_masks_give_uniform_p_values(case):
    """Under the contract each check's p-value is uniform (position's, Bonferroni-corrected, at
    most so): below 0.1 in at most a tenth of 100 trials, within a 99.9 % binomial band."""
    trials = 100
    low, high = stats.binom.interval(0.999, trials, 0.1)
    below = {"rate": 0, "dispersion": 0, "position": 0}
    for trial in range(trials):
        masks, reference = _in_calls(_masks(case, MAPS, 2 * trial)), _masks(case, MAPS, 2 * trial + 1)
        below["rate"] += rate_check(PAPER, case, masks).p_value < 0.1
        below["dispersion"] += dispersion_check(PAPER, case, masks, reference).p_value < 0.1
        below["position"] += position_check(PAPER, case, masks).p_value < 0.1
        assert blocks_check(PAPER, case, masks.masks).verdict is Verdict.PASS
    # The larger of two standard errors makes rate and dispersion a little conservative.
    assert below["rate"] <= high and below["dispersion"] <= high and below["position"] <= high
    assert below["rate"] >= low - 3 and below["dispersion"] >= low - 3


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_maps_repeated_within_a_call_are_not_counted_as_independent(case):
    """A batch-shared mask (each call's maps identical, marginals right) gives the law checks no
    false alarm: across 100 trials their p-values fall below the Bonferroni level no more often
    than a 1 % false-alarm budget allows."""
    trials = 100
    level = DEFAULT.bonferroni_level
    alarms = {"rate": 0, "dispersion": 0, "position": 0}
    for trial in range(trials):
        sample = _batch_shared(case, 400, 9, 2 * trial)
        reference = _masks(case, 3600, 2 * trial + 1)
        alarms["rate"] += rate_check(PAPER, case, sample).p_value < level
        alarms["dispersion"] += dispersion_check(PAPER, case, sample, reference).p_value < level
        alarms["position"] += position_check(PAPER, case, sample).p_value < level
    allowed = stats.binom.isf(1e-3, trials, 0.01)
    assert all(count <= allowed for count in alarms.values()), alarms


def _p_for_rate(height: int, width: int, block_size: int, rate: float) -> float:
    """The p whose exact drop rate on an H x W map is ``rate`` (bisection: the rate increases with p)."""
    low, high = 0.0, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        if spec.expected_drop_rate(PAPER, mid, height, width, block_size) < rate:
            low = mid
        else:
            high = mid
    return high


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_each_check_names_the_property_that_broke(case):
    """Masks with one property wrong and the mean rate right (by construction, in expectation)
    fail that property's check; the rate check, and the block check where blocks stay whole,
    do not fail."""
    level = DEFAULT.bonferroni_level
    reference = _masks(case, MAPS, 2)
    rate = spec.expected_drop_rate(PAPER, case.p, case.height, case.width, case.block_size)

    # Wrong spread: half the maps empty, the other half at twice the rate.
    spread = torch.zeros_like(reference)
    spread[1::2] = _masks(case, MAPS // 2, 3, p=_p_for_rate(case.height, case.width, case.block_size, 2 * rate))
    assert dispersion_check(PAPER, case, _in_calls(spread), reference).p_value < level
    assert rate_check(PAPER, case, _in_calls(spread)).p_value >= level
    assert blocks_check(PAPER, case, spread).verdict is Verdict.PASS

    # Misplaced blocks: whole blocks drawn on a map two columns narrower (at the p that keeps the
    # mean rate of the full map), the last two columns never dropped.
    narrow = Case(case.height, case.width - 2, case.block_size, case.p)
    p_narrow = _p_for_rate(narrow.height, narrow.width, narrow.block_size, rate * case.width / narrow.width)
    misplaced = torch.zeros_like(reference)
    misplaced[:, :, : narrow.width] = _masks(narrow, MAPS, 4, p=p_narrow)
    position = position_check(PAPER, case, _in_calls(misplaced))
    assert position.p_value < level and "misplaced" in position.reason
    assert rate_check(PAPER, case, _in_calls(misplaced)).p_value >= level
    assert blocks_check(PAPER, case, misplaced).verdict is Verdict.PASS

    # A lone dropped unit is no block.
    stray = reference.clone()
    stray[0] = False
    stray[0, 0, 0] = True
    bad = blocks_check(PAPER, case, stray)
    assert bad.verdict is Verdict.FAIL and bad.observed == 1


@pytest.mark.slow
def test_power_formula_against_simulation():
    """rate_check on masks from the exact sampler whose rate is 10 % too high (p raised until
    the exact rate is 1.1x) rejects as often as power_reached says, within a 99.9 % binomial
    band. At power 0.5 the shift sits at the rejection bound, where the larger spread of the
    raised rate does not move the rejection rate. The maps come in ``min_calls`` calls, so the
    test divides by the larger of the exact and the between-call standard error, as verify does."""
    case = DEFAULT_CASES[0]
    settings = VerifySettings(power=0.5)
    contract = spec.PAPER_CONTRACT
    maps = settings.maps_for(contract, case)
    target = 1.1 * spec.expected_drop_rate(contract, case.p, case.height, case.width, case.block_size)
    high_p = _p_for_rate(case.height, case.width, case.block_size, target)
    generator = torch.Generator().manual_seed(3)
    trials, hits = 200, 0
    for _ in range(trials):
        masks = spec.reference_drop_mask(contract, (maps, 1, case.height, case.width), high_p, case.block_size, generator=generator)
        hits += rate_check(contract, case, _in_calls(masks[:, 0], settings.min_calls)).p_value < settings.bonferroni_level
    low, high = stats.binom.interval(0.999, trials, settings.power_reached(contract, case, maps))
    assert low <= hits <= high
    # At the right rate, p-values are uniform: below 0.1 in a tenth of trials, within the band.
    below = sum(
        rate_check(contract, case, _in_calls(spec.reference_drop_mask(contract, (maps, 1, case.height, case.width), case.p,
                                                                      case.block_size, generator=generator)[:, 0])).p_value < 0.1
        for _ in range(trials)
    )  # fmt: skip
    low, high = stats.binom.interval(0.999, trials, 0.1)
    assert low <= below <= high
