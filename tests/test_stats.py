"""Summary statistics of timing samples."""

from __future__ import annotations

import random

import pytest
from scipy import stats

from dropblock_bench.stats import median_confidence_interval, summarize


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
