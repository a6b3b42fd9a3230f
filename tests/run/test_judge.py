"""The verdict rule: decided only on evidence, false alarms within the level, power where claimed."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats

from dropblock_bench.run.judge import (
    INCONCLUSIVE,
    REGRESSION,
    SAME,
    decide,
    judge_paired,
    judge_unpaired,
    smallest_paired_p,
    smallest_unpaired_p,
)


def _rounds(rng: random.Random, n: int, factor: float = 1.0, spread: float = 0.03, outliers: float = 0.0) -> list[float]:
    """n round values around ``factor`` ms: log-normal spread, and a share of rounds slowed
    1.5-3x (a machine's hiccups), as this tool sees them on a shared machine."""
    values = []
    for _ in range(n):
        value = factor * math.exp(rng.gauss(0.0, spread))
        if rng.random() < outliers:
            value *= rng.uniform(1.5, 3.0)
        values.append(value)
    return values


def test_decide_never_calls_a_change_whose_interval_includes_one():
    assert decide(1.09, 0.99, 1.2, 1e-9, None, 0.05, 0.01) == INCONCLUSIVE
    assert decide(1.09, 1.01, 1.2, 1e-9, None, 0.05, 0.01) == REGRESSION
    assert decide(0.9, 0.8, 1.001, None, 1e-9, 0.05, 0.01) == INCONCLUSIVE
    assert decide(1.01, 0.99, 1.03, 0.4, 0.6, 0.05, 0.01) == SAME
    assert decide(1.01, None, None, 0.4, 0.6, 0.05, 0.01) == INCONCLUSIVE  # no interval: never ~


def test_the_smallest_p_values_are_those_of_the_exact_tests():
    assert smallest_paired_p(10) == pytest.approx(2**-10)
    assert smallest_unpaired_p(8, 8) == pytest.approx(1 / 12870)


def test_identical_code_is_the_same_once_the_rounds_are_many():
    rng = random.Random(0)
    base = _rounds(rng, 48)
    head = [value * math.exp(rng.gauss(0.0, 0.01)) for value in base]
    judgement = judge_paired(base, head, 0.05, 1e-4)
    assert judgement.verdict == SAME and judgement.ci_low is not None and judgement.ci_low > 1 / 1.05


def test_a_ten_percent_slowdown_is_a_regression_and_a_speed_up_an_improvement():
    rng = random.Random(1)
    base = _rounds(rng, 48)
    slower = [value * 1.1 * math.exp(rng.gauss(0.0, 0.03)) for value in base]
    judgement = judge_paired(base, slower, 0.05, 1e-4)
    assert judgement.verdict == REGRESSION and judgement.ci_low is not None and judgement.ci_low > 1.0
    assert judgement.ratio == pytest.approx(1.1, abs=0.02)
    faster = judge_paired(base, [value / 1.1 * math.exp(rng.gauss(0.0, 0.03)) for value in base], 0.05, 1e-4)
    assert faster.verdict == "improvement"


def test_too_few_rounds_are_inconclusive_with_the_rounds_needed():
    rng = random.Random(2)
    base = _rounds(rng, 8)
    judgement = judge_paired(base, [v * 1.3 for v in base], 0.05, 1e-4)
    assert judgement.verdict == INCONCLUSIVE  # 2^-8 can never go below 1e-4
    assert judgement.rounds_needed is not None and smallest_paired_p(judgement.rounds_needed) < 1e-4
    unpaired = judge_unpaired(base, [v * 1.3 for v in base][:3], 0.05, 1e-4)
    assert unpaired.verdict == INCONCLUSIVE and unpaired.rounds_needed is not None


@pytest.mark.parametrize("judge", [judge_paired, judge_unpaired])
def test_identical_code_raises_no_more_alarms_than_the_level(judge):
    """With the threshold at 0 only the test gates, so under identical code (heavy-tailed
    noise, 16 rounds a side) the share of regressions stays within the 99.9 % binomial band of
    the level; the 5 % threshold only lowers it further."""
    rng = random.Random(3)
    trials, level, alarms, alarms_at_threshold = 1000, 0.05, 0, 0
    for _ in range(trials):
        base, head = _rounds(rng, 16, outliers=0.1), _rounds(rng, 16, outliers=0.1)
        alarms += judge(base, head, 0.0, level).verdict == REGRESSION
        alarms_at_threshold += judge(base, head, 0.05, level).verdict == REGRESSION
    assert alarms <= stats.binom.ppf(0.999, trials, level)
    assert alarms_at_threshold <= alarms


def test_a_ten_percent_slowdown_is_found_in_at_least_95_percent_of_trials():
    """Power at the per-case level of 16 cases over 6 looks at alpha 0.01, with 3 % spread and
    10 % of rounds hit by a hiccup on either side, 96 paired rounds (``dbench ab``'s most)."""
    rng = random.Random(4)
    level, trials, found = 0.01 / (16 * 6), 200, 0
    for _ in range(trials):
        base = _rounds(rng, 96, outliers=0.1)
        head = _rounds(rng, 96, factor=1.1, outliers=0.1)
        found += judge_paired(base, head, 0.05, level).verdict == REGRESSION
    assert found >= 0.95 * trials


def test_bad_replicates_are_refused():
    with pytest.raises(ValueError, match="differ in number"):
        judge_paired([1.0, 2.0], [1.0], 0.05, 0.01)
    with pytest.raises(ValueError, match="> 0"):
        judge_unpaired([1.0, 0.0], [1.0, 2.0], 0.05, 0.01)
