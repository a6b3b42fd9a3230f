"""Summary statistics of timing samples."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats

from dropblock_bench.stats import median_confidence_interval, ratio_excess, round_medians, summarize


def test_summary_of_known_samples():
    summary = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert summary.median == 3.0 and summary.n == 5
    assert summary.iqr == pytest.approx(2.0)
    assert summary.ci_low <= 3.0 <= summary.ci_high


def test_single_sample_and_empty():
    assert summarize([2.5]).ci_low == summarize([2.5]).ci_high == 2.5
    with pytest.raises(ValueError):
        summarize([])


def _exact_coverage(n: int, j: int) -> float:
    """P(X(j) <= median <= X(n-j+1)) for n draws of a continuous law: 1 - 2 P(Binomial(n, 1/2) < j)."""
    return 1 - 2 * sum(math.comb(n, i) for i in range(j)) / 2**n


@pytest.mark.parametrize("n", [2, 5, 6, 9, 10, 25, 60, 101])
def test_median_interval_takes_the_narrowest_ranks_that_keep_95_percent(n):
    """On the samples 0..n-1 the interval's ends are its ranks: [X(j), X(n-j+1)] with the largest
    j whose exact coverage is >= 95 % (j = 1, the full range, when none is)."""
    low, high = median_confidence_interval(list(reversed(range(n))))
    j = int(low) + 1
    assert high == n - j
    assert j == 1 or _exact_coverage(n, j) >= 0.95
    assert j + 1 > n / 2 or _exact_coverage(n, j + 1) < 0.95


@pytest.mark.parametrize("n", [10, 25, 60])
def test_median_interval_covers_at_its_exact_rate(n):
    """Coverage over 2,000 skewed samples lies within the 99.9 % binomial band around the ranks'
    exact coverage (>= 95 %)."""
    rng = random.Random(n)
    trials, true_median = 2000, 0.6931471805599453  # median of Exp(1)
    hits = 0
    for _ in range(trials):
        low, high = median_confidence_interval([rng.expovariate(1.0) for _ in range(n)])
        hits += low <= true_median <= high
    ranks = median_confidence_interval(list(range(n)))
    exact = _exact_coverage(n, int(ranks[0]) + 1)
    assert exact >= 0.95
    assert stats.binom.ppf(0.0005, trials, exact) <= hits <= stats.binom.ppf(0.9995, trials, exact)


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


def test_round_medians_split_the_samples_by_round():
    assert round_medians([3.0, 1.0, 2.0, 10.0, 5.0, 7.0, 9.0], [3, 1, 3]) == [2.0, 10.0, 7.0]
    for per_round in ([3, 3], [3, 1, 2, 2], [7, 0]):  # too few, too many, an empty round
        with pytest.raises(ValueError, match="does not split"):
            round_medians([1.0] * 7, per_round)
