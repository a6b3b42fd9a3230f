"""Summary statistics of timing samples. Pure: numbers in, numbers out (milliseconds in, milliseconds out)."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence

from scipy import stats as scipy_stats


@dataclasses.dataclass(frozen=True)
class SampleSummary:
    """Median, interquartile range and a distribution-free confidence interval of the median."""

    median: float
    iqr: float
    ci_low: float
    ci_high: float
    n: int


def median_confidence_interval(samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Order-statistic interval for the median: ranks from Binomial(n, 1/2) quantiles.

    Covers the true median with probability >= ``confidence`` for any continuous distribution;
    with few samples it widens to the full range.
    """
    ordered = sorted(samples)
    n = len(ordered)
    if n == 0:
        raise ValueError("no samples")
    alpha = 1 - confidence
    # [X(j), X(n-j+1)] (1-based) covers the median with probability 1 - 2 * F(j - 1), F the
    # Binomial(n, 1/2) cdf; take the largest j that keeps that >= confidence (at least j = 1).
    j = 1
    while j < n / 2 and 2 * scipy_stats.binom.cdf(j, n, 0.5) <= alpha:
        j += 1
    return ordered[j - 1], ordered[n - j]


def summarize(samples: Sequence[float], confidence: float = 0.95) -> SampleSummary:
    """Median, IQR (inclusive quartiles) and the median's confidence interval."""
    if not samples:
        raise ValueError("no samples")
    if len(samples) == 1:
        only = samples[0]
        return SampleSummary(only, 0.0, only, only, 1)
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    low, high = median_confidence_interval(samples, confidence)
    return SampleSummary(statistics.median(samples), q3 - q1, low, high, len(samples))


def round_medians(samples: Sequence[float], per_round: Sequence[int]) -> list[float]:
    """The median of each round's samples, where ``samples`` are the rounds' samples back to
    back and ``per_round`` how many each round gave (as a ``dbench run`` record keeps them)."""
    if sum(per_round) != len(samples) or any(count < 1 for count in per_round):
        raise ValueError(f"per_round {list(per_round)} does not split {len(samples)} samples into nonempty rounds")
    medians, start = [], 0
    for count in per_round:
        medians.append(statistics.median(samples[start : start + count]))
        start += count
    return medians


@dataclasses.dataclass(frozen=True)
class RatioExcess:
    """How much ratio ``a / a_floor`` exceeds ``b / b_floor`` over paired rounds."""

    median: float  # median over rounds of the per-round excess (a ratio difference, unitless)
    p_value: float  # one-sided: small when the excess is > 0 in most rounds
    rounds: int


def ratio_excess(rounds: Sequence[tuple[float, float, float, float]]) -> RatioExcess:
    """Whether ``a`` is slower relative to its floor than ``b`` is to its own, from rounds of
    ``(a, a_floor, b, b_floor)`` times (ms; each a round's median of one statement, the four
    timed back to back).

    The rounds are the replicates: a shared machine's slowdowns last seconds and move the four
    times of a round together, which cancels in the round's ratios; pooling the single timings
    instead would count one slow stretch as many independent samples. The per-round excess
    ``a / a_floor - b / b_floor`` is tested with the one-sided Wilcoxon signed-rank test
    (H1: its distribution lies above 0), which assumes rounds independent and the excess
    symmetric under H0, not normal.
    """
    if len(rounds) < 2:
        raise ValueError("need at least 2 rounds")
    excess = [a / a_floor - b / b_floor for a, a_floor, b, b_floor in rounds]
    if all(value == 0.0 for value in excess):
        return RatioExcess(0.0, 1.0, len(excess))
    p_value = float(scipy_stats.wilcoxon(excess, alternative="greater").pvalue)
    return RatioExcess(statistics.median(excess), p_value, len(excess))
