"""Summary statistics of timing samples."""

from __future__ import annotations

import random

import pytest
from scipy import stats

from dropblock_bench.stats import median_confidence_interval, ratio_excess, summarize


def test_summary_of_known_samples():
    summary = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert summary.median == 3.0 and summary.n == 5
    assert summary.iqr == pytest.approx(2.0)
    assert summary.ci_low <= 3.0 <= summary.ci_high


def test_single_sample_and_empty():
    assert summarize([2.5]).ci_low == summarize([2.5]).ci_high == 2.5
    with pytest.raises(ValueError):
        summarize([])


@pytest.mark.parametrize("n", [10, 25, 60])
def test_median_interval_covers_at_the_stated_rate(n):
    """Coverage of a 95 % interval over 2,000 skewed samples, within a 99.9 % binomial band."""
    rng = random.Random(n)
    trials, true_median = 2000, 0.6931471805599453  # median of Exp(1)
    hits = 0
    for _ in range(trials):
        low, high = median_confidence_interval([rng.expovariate(1.0) for _ in range(n)])
        hits += low <= true_median <= high
    # The interval is conservative: coverage >= 95 %, so hits must not fall below the band's lower end.
    assert hits >= stats.binom.ppf(0.0005, trials, 0.95)


def _rounds(rng: random.Random, n: int, ratio_a: float, ratio_b: float, jitter: float) -> list[tuple[float, ...]]:
    """n rounds of (a, a_floor, b, b_floor) ms: each round slowed as a whole by a shared factor
    (a busy neighbour, lasting the round), each time by its own jitter."""
    rounds = []
    for _ in range(n):
        slow = rng.lognormvariate(0.0, 0.4)
        times = (ratio_a * 2.0, 2.0, ratio_b * 4.0, 4.0)
        rounds.append(tuple(t * slow * rng.lognormvariate(0.0, jitter) for t in times))
    return rounds


def test_ratio_excess_false_alarms_stay_at_the_level():
    """Equal ratios: p < 0.01 in at most 1 % of 2,000 trials, within a 99.9 % binomial band,
    however slow each round runs."""
    rng = random.Random(1)
    trials = 2000
    alarms = sum(ratio_excess(_rounds(rng, 16, 1.2, 1.2, 0.05)).p_value < 0.01 for _ in range(trials))
    assert alarms <= stats.binom.ppf(0.9995, trials, 0.01)


def test_ratio_excess_finds_a_real_excess():
    """a at 1.3x its floor, b at 1.2x, 2 % jitter per time: found (p < 0.01) in >= 95 % of
    trials, within a 99.9 % binomial band."""
    rng = random.Random(2)
    trials = 500
    found = sum(ratio_excess(_rounds(rng, 16, 1.3, 1.2, 0.02)).p_value < 0.01 for _ in range(trials))
    assert found >= stats.binom.ppf(0.0005, trials, 0.95)
    # A round's excess has sd ~ sqrt(1.3^2 + 1.2^2) * 0.02 * sqrt(2) = 0.05; the median of 16, ~0.016:
    # within 4 of those.
    assert ratio_excess(_rounds(rng, 16, 1.3, 1.2, 0.02)).median == pytest.approx(0.1, abs=0.065)


def test_ratio_excess_edge_cases():
    assert ratio_excess([(1.0, 1.0, 2.0, 2.0)] * 3).p_value == 1.0  # no excess at all
    assert ratio_excess([(1.1, 1.0, 1.0, 1.0)] * 12).p_value < 0.01  # slower in every round
    assert ratio_excess([(0.9, 1.0, 1.0, 1.0)] * 12).p_value > 0.99  # faster in every round
    with pytest.raises(ValueError):
        ratio_excess([(1.0, 1.0, 1.0, 1.0)])
