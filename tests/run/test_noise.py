"""Noise flags: a spread or a drifting floor is flagged, a tight case is not."""

from __future__ import annotations

import random

import pytest

from dropblock_bench.run.noise import FLOOR_DRIFT, MAX_FLOOR_DRIFT, MAX_IQR_FRACTION, SPREAD, floor_drift, noise_flags
from dropblock_bench.run.records import Timing
from dropblock_bench.stats import summarize


def _timing(samples: list[float], floor_rounds: list[list[float]]) -> Timing:
    """A timing as the engine summarises it: ``samples`` (ms), the floor's samples round by round."""
    summary = summarize(samples)
    floor = [value for round_samples in floor_rounds for value in round_samples]
    return Timing(
        median_ms=summary.median,
        iqr_ms=summary.iqr,
        ci_low_ms=summary.ci_low,
        ci_high_ms=summary.ci_high,
        n_samples=summary.n,
        floor_median_ms=summarize(floor).median,
        floor_ratio=None,
        gbps=None,
        samples_ms=samples,
        floor_samples_ms=floor,
        samples_per_round=[len(samples)],
        floor_samples_per_round=[len(round_samples) for round_samples in floor_rounds],
    )


STEADY_FLOOR = [[0.50, 0.51, 0.50], [0.51, 0.50, 0.52], [0.50, 0.50, 0.51]]


def test_a_tight_case_has_no_flag():
    # normal noise with a 1 % standard deviation: IQR about 1.35 %, far under the 10 % threshold
    rng = random.Random(0)
    samples = [rng.gauss(2.0, 0.02) for _ in range(40)]
    assert noise_flags(_timing(samples, STEADY_FLOOR)) == []


def test_a_wide_spread_is_flagged():
    samples = [1.0, 1.0, 1.2, 1.4, 1.0, 1.5, 1.0, 1.3]  # IQR about 0.3 on a median about 1.1
    timing = _timing(samples, STEADY_FLOOR)
    assert timing.iqr_ms / timing.median_ms > MAX_IQR_FRACTION
    assert noise_flags(timing) == [SPREAD]


def test_a_floor_that_slows_down_between_rounds_is_flagged():
    drifting = [[0.50, 0.51, 0.50], [0.80, 0.79, 0.81], [0.50, 0.50, 0.51]]  # round 2 at 1.6x; 3 rounds: none left out
    timing = _timing([2.0] * 9, drifting)
    assert floor_drift(timing) == pytest.approx(0.80 / 0.50)
    assert noise_flags(timing) == [FLOOR_DRIFT]
    both = _timing([1.0, 1.0, 1.2, 1.4, 1.0, 1.5, 1.0, 1.3], drifting)
    assert noise_flags(both) == [SPREAD, FLOOR_DRIFT]  # fixed order


def test_one_disturbed_round_of_many_is_not_a_drift_but_several_are():
    steady = [[0.50, 0.50]] * 6
    one_spike = _timing([2.0] * 8, [*steady, [5.0, 5.0], [0.49, 0.50]])  # e.g. a stall in one round
    assert floor_drift(one_spike) == pytest.approx(1.0) and noise_flags(one_spike) == []
    slower_half = _timing([2.0] * 8, [*steady[:4], *[[0.70, 0.70]] * 4])  # the machine slowed down midway
    assert floor_drift(slower_half) == pytest.approx(0.70 / 0.50) and noise_flags(slower_half) == [FLOOR_DRIFT]


def test_the_thresholds_are_strict_bounds():
    at_spread = Timing(1.0, MAX_IQR_FRACTION, 1.0, 1.0, 2, 0.5, 2.0, None)
    assert noise_flags(at_spread) == []
    at_drift = _timing([1.0, 1.0], [[1.0], [MAX_FLOOR_DRIFT]])
    assert floor_drift(at_drift) == pytest.approx(MAX_FLOOR_DRIFT) and noise_flags(at_drift) == []


@pytest.mark.parametrize(
    ("floor_samples", "per_round"),
    [
        ([0.5, 0.9], [2]),  # one round: nothing to compare
        ([0.5, 0.9], []),  # a file without per-round counts
        ([0.5, 0.9], [1, 3]),  # counts that do not split the samples
        ([0.0, 0.9], [1, 1]),  # a round at 0 ms
    ],
)
def test_a_drift_that_cannot_be_judged_is_not_flagged(floor_samples, per_round):
    timing = Timing(1.0, 0.0, 1.0, 1.0, 2, 0.5, 2.0, None, floor_samples_ms=floor_samples, floor_samples_per_round=per_round)
    assert floor_drift(timing) is None and noise_flags(timing) == []


def test_a_zero_median_is_not_a_spread():
    assert noise_flags(Timing(0.0, 0.1, 0.0, 0.0, 2, 0.5, None, None)) == []
