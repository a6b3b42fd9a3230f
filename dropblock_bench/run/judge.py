"""The verdict on "did it get slower?": one decision rule for ``dbench ab``, ``dbench compare``
and two implementations of one run. Pure: numbers in, a :class:`Judgement` out.

The evidence is a list of replicates per side, each one value (a round's median time in ms, or
its ratio to the floor op timed in the same round). Replicates are **rounds**, never the
blocks inside a round: a machine's drifts (load, frequency, memory placement) last longer than a
block, so blocks of one round are not independent of each other, and counting them as samples
calls noise significant.

- **paired** (``dbench ab``; two implementations of one run): round r of the base and round r of
  the head ran back to back. The evidence is ``d_r = log(head_r / base_r)``; the estimate is
  ``exp(median d)`` (the median paired ratio); the test is the one-sided Wilcoxon signed-rank
  test of ``d`` in each direction; the interval is the one that test gives (Walsh averages,
  the Hodges-Lehmann interval), which tolerates a share of hiccup rounds and is narrower than
  the median's own order-statistic interval for the same rounds.
- **unpaired** (two separate runs; pytest-benchmark samples): the evidence is the two sets of
  log values; the estimate is ``exp`` of the Hodges-Lehmann shift (median of all head-minus-base
  differences); the test is the one-sided Mann-Whitney U test in each direction; the interval is
  the matching Hodges-Lehmann interval.

At a per-case ``level`` (the caller's ``alpha`` split over cases and looks, Bonferroni), a case is

- ``regression``: estimate >= 1 + threshold, p(slower) < level, interval above 1;
- ``improvement``: estimate <= 1 / (1 + threshold), p(faster) < level, interval below 1;
- ``~``: the interval lies inside (1 / (1 + threshold), 1 + threshold): whatever changed, it is
  smaller than the threshold;
- ``inconclusive``: none of these; :attr:`Judgement.rounds_needed` says about how many
  replicates per side would decide it.

An interval that includes 1 never gives a regression or an improvement. The false-alarm rate of
``regression`` is at most ``level`` per case and look (the test's own), and lower in practice,
since the estimate must also pass the threshold.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import stats

__all__ = [
    "IMPROVEMENT",
    "INCONCLUSIVE",
    "REGRESSION",
    "SAME",
    "Judgement",
    "decide",
    "judge_log_ratios",
    "judge_paired",
    "judge_unpaired",
]

REGRESSION = "regression"
IMPROVEMENT = "improvement"
SAME = "~"
INCONCLUSIVE = "inconclusive"
MAX_ROUNDS_NEEDED = 100_000


@dataclasses.dataclass(frozen=True)
class Judgement:
    """One case's verdict and its evidence. Ratios are head / base (> 1: head slower)."""

    ratio: float
    ci_low: float | None
    """Interval of the ratio at confidence ``1 - 2 * level``; None when the replicates are too
    few for any interval at that confidence."""
    ci_high: float | None
    p_value: float | None
    """The one-sided p of the direction the estimate points to (slower if ratio >= 1)."""
    n_base: int
    n_head: int
    test: str
    verdict: str
    rounds_needed: int | None = None
    """For ``inconclusive``: about how many replicates per side would decide it (None: the
    estimate sits on a boundary, no number of rounds is predictable)."""


def decide(ratio: float, ci_low: float | None, ci_high: float | None, p_slower: float | None, p_faster: float | None,
           threshold: float, level: float) -> str:  # fmt: skip
    """The rule of the module docstring. A missing interval (None) blocks ``~`` but not a
    regression backed by the test alone (a Welch test on summary statistics has no interval)."""
    slower_for_sure = ci_low is None or ci_low > 1.0
    faster_for_sure = ci_high is None or ci_high < 1.0
    if p_slower is not None and p_slower < level and ratio >= 1.0 + threshold and slower_for_sure:
        return REGRESSION
    if p_faster is not None and p_faster < level and ratio <= 1.0 / (1.0 + threshold) and faster_for_sure:
        return IMPROVEMENT
    if ci_low is not None and ci_high is not None and ci_low > 1.0 / (1.0 + threshold) and ci_high < 1.0 + threshold:
        return SAME
    return INCONCLUSIVE


def _logs(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.size and not np.all(array > 0):
        raise ValueError("every value must be > 0")
    return np.log(array)


def _walsh_interval(d: np.ndarray, level: float) -> tuple[float, float] | None:
    """The interval of the centre of ``d`` matching the signed-rank test at confidence
    ``1 - 2 * level``: sorted Walsh averages ``(d_i + d_j) / 2`` (i <= j) k+1 and N-k (1-based),
    k the test's lower critical value (normal approximation with continuity correction);
    None when the rounds are too few for that confidence."""
    n = d.size
    z = float(stats.norm.isf(level))
    if not math.isfinite(z) or smallest_paired_p(n) > level:
        return None
    k = math.floor(n * (n + 1) / 4.0 - z * math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0) - 0.5)
    if k < 0:
        return None
    rows, cols = np.triu_indices(n)
    walsh = np.sort((d[rows] + d[cols]) / 2.0)
    return float(walsh[k]), float(walsh[walsh.size - k - 1])


def _wilcoxon(d: np.ndarray, alternative: Literal["less", "greater"]) -> float:
    if not np.any(d != 0):
        return 1.0
    return float(stats.wilcoxon([float(v) for v in d], alternative=alternative).pvalue)


def smallest_paired_p(n: int) -> float:
    """The smallest one-sided p a Wilcoxon signed-rank test can give with n pairs: 2^-n."""
    return 0.5**n


def smallest_unpaired_p(n_base: int, n_head: int) -> float:
    """The smallest one-sided p a Mann-Whitney U test can give: 1 / C(n_base + n_head, n_base)."""
    if n_base == 0 or n_head == 0:
        return 1.0
    return 1.0 / math.comb(n_base + n_head, n_base)


def judge_paired(base: Sequence[float], head: Sequence[float], threshold: float, level: float,
                 test: str = "wilcoxon signed-rank, paired rounds") -> Judgement:  # fmt: skip
    """Paired replicates: ``base[r]`` and ``head[r]`` ran back to back (see the module docstring)."""
    if len(base) != len(head):
        raise ValueError(f"paired replicates differ in number: {len(base)} vs {len(head)}")
    return judge_log_ratios(_logs(head) - _logs(base), threshold, level, test)


def judge_log_ratios(log_ratios: Sequence[float], threshold: float, level: float,
                     test: str = "wilcoxon signed-rank, paired rounds") -> Judgement:  # fmt: skip
    """Paired replicates given as ``log(head / base)``, one per replicate."""
    d = np.asarray(log_ratios, dtype=float)
    n = int(d.size)
    if n < 2:
        return Judgement(math.exp(float(d[0])) if n else 1.0, None, None, None, n, n, test, INCONCLUSIVE, _min_paired(level))
    estimate = float(np.median(d))
    interval = _walsh_interval(d, level)
    p_slower, p_faster = _wilcoxon(d, "greater"), _wilcoxon(d, "less")
    ratio = math.exp(estimate)
    low, high = (math.exp(interval[0]), math.exp(interval[1])) if interval else (None, None)
    verdict = decide(ratio, low, high, p_slower, p_faster, threshold, level) if interval else INCONCLUSIVE
    needed = None
    if verdict == INCONCLUSIVE:
        needed = max(_min_paired(level), _by_width(n, estimate, interval, threshold) or 0)
    return Judgement(ratio, low, high, p_slower if ratio >= 1 else p_faster, n, n, test, verdict, needed)


def judge_unpaired(base: Sequence[float], head: Sequence[float], threshold: float, level: float,
                   test: str = "mann-whitney, rounds") -> Judgement:  # fmt: skip
    """Independent replicates of each side (see the module docstring)."""
    b, h = _logs(base), _logs(head)
    m, n = int(b.size), int(h.size)
    if m < 2 or n < 2:
        ratio = math.exp(float(np.median(h) - np.median(b))) if m and n else 1.0
        return Judgement(ratio, None, None, None, m, n, test, INCONCLUSIVE, _min_unpaired(level))
    differences = np.sort((h[:, None] - b[None, :]).ravel())
    estimate = float(np.median(differences))
    interval = _hodges_lehmann_interval(differences, m, n, level)
    p_slower = float(stats.mannwhitneyu(h, b, alternative="greater").pvalue)
    p_faster = float(stats.mannwhitneyu(h, b, alternative="less").pvalue)
    ratio = math.exp(estimate)
    low, high = (math.exp(interval[0]), math.exp(interval[1])) if interval else (None, None)
    verdict = decide(ratio, low, high, p_slower, p_faster, threshold, level) if interval else INCONCLUSIVE
    needed = None
    if verdict == INCONCLUSIVE:
        needed = max(_min_unpaired(level), _by_width(min(m, n), estimate, interval, threshold) or 0)
    return Judgement(ratio, low, high, p_slower if ratio >= 1 else p_faster, m, n, test, verdict, needed)


def _hodges_lehmann_interval(differences: np.ndarray, m: int, n: int, level: float) -> tuple[float, float] | None:
    """The interval of the shift matching the Mann-Whitney test at confidence ``1 - 2 * level``:
    sorted differences k+1 and mn-k (1-based), k the test's lower critical value (normal
    approximation with continuity correction); None when k < 0 (too few replicates)."""
    z = float(stats.norm.isf(level))
    if not math.isfinite(z):
        return None
    k = math.floor(m * n / 2.0 - z * math.sqrt(m * n * (m + n + 1) / 12.0) - 0.5)
    if k < 0 or smallest_unpaired_p(m, n) > level:
        return None
    return float(differences[k]), float(differences[m * n - k - 1])


def _min_paired(level: float) -> int:
    return max(2, math.ceil(math.log2(1.0 / level)) + 1)


def _min_unpaired(level: float) -> int:
    n = 2
    while smallest_unpaired_p(n, n) > level / 4:  # some room: a perfect split is not enough in practice
        n += 1
    return n


def _by_width(n: int, estimate: float, interval: tuple[float, float] | None, threshold: float) -> int | None:
    """About how many replicates would shrink the interval (half-width ~ 1/sqrt(n)) enough to
    clear the nearest boundary of a decision: 0 for a regression/improvement past the
    threshold, the threshold itself for ``~``. None when the estimate sits on that boundary."""
    if interval is None:
        return None
    half = (interval[1] - interval[0]) / 2.0
    bound = math.log1p(threshold)
    distance = abs(estimate) if abs(estimate) >= bound else bound - abs(estimate)
    if distance <= 1e-12 or half <= 0:
        return None if half > 0 else n
    return min(MAX_ROUNDS_NEEDED, math.ceil(n * (half / distance) ** 2))
