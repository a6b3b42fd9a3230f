"""Noise flags of a timed case: spreads too large to trust, said in plain sight. Pure.

A case's times are trusted as far as its samples agree. Two checks, each a short flag name
that the run table marks and the results files keep (column ``noise``):

- ``spread``: the IQR of the samples exceeds :data:`MAX_IQR_FRACTION` of their median.
- ``floor-drift``: the floor op (``x * c``, the same work every round) ran at different speeds
  from round to round: the largest of its per-round medians exceeds the smallest by more than
  :data:`MAX_FLOOR_DRIFT`, the single highest and lowest left out from 4 rounds on (one
  disturbed round barely moves a median; a drift moves several). The machine changed under
  the case (another process, a frequency step); ratios to the floor, timed alongside, hold
  better than absolute milliseconds.

A flag does not void a result: ``floor_ratio`` and ×best compare blocks timed side by side and
see the same drifts. It says the absolute times of that case would not reproduce closely.
"""

from __future__ import annotations

from dropblock_bench.run.records import Timing
from dropblock_bench.stats import round_medians

__all__ = ["FLOOR_DRIFT", "MAX_FLOOR_DRIFT", "MAX_IQR_FRACTION", "SPREAD", "TRIMMED_ROUNDS", "floor_drift", "noise_flags"]

SPREAD = "spread"
FLOOR_DRIFT = "floor-drift"

MAX_IQR_FRACTION = 0.10
"""IQR / median above which a case is flagged ``spread``. At 10 % the middle half of the
samples spans twice the 5 % change that ``dbench compare`` calls a regression by default, so
the case's own scatter is as large as the differences a comparison looks for; a quiet machine
keeps it to a few percent."""

MAX_FLOOR_DRIFT = 1.25
"""Largest over smallest per-round floor median (see :func:`floor_drift`) above which a case
is flagged ``floor-drift``. The floor does the same work each round, so its rounds agree
within about 10 % on a quiet machine, even a small shared VM; a quarter more time in some
rounds than in others means the machine itself changed speed during the case (frequency
steps, another process taking cores)."""

TRIMMED_ROUNDS = 4
"""From this many rounds on, :func:`floor_drift` leaves out the highest and the lowest round."""


def floor_drift(timing: Timing) -> float | None:
    """Largest over smallest of the floor op's per-round medians (unitless, >= 1), the single
    highest and lowest left out from :data:`TRIMMED_ROUNDS` rounds on; None with fewer than 2
    rounds, samples that the per-round counts do not split, or a round at 0 ms."""
    per_round = timing.floor_samples_per_round
    if len(per_round) < 2:
        return None
    try:
        medians = sorted(round_medians(timing.floor_samples_ms, per_round))
    except ValueError:
        return None
    if len(medians) >= TRIMMED_ROUNDS:
        medians = medians[1:-1]
    low = medians[0]
    return medians[-1] / low if low > 0 else None


def noise_flags(timing: Timing) -> list[str]:
    """The flags of ``timing``, in a fixed order (:data:`SPREAD`, :data:`FLOOR_DRIFT`); empty
    when its spread is within the thresholds (or cannot be judged: no samples, a 0 ms median)."""
    flags = []
    if timing.median_ms > 0 and timing.iqr_ms / timing.median_ms > MAX_IQR_FRACTION:
        flags.append(SPREAD)
    drift = floor_drift(timing)
    if drift is not None and drift > MAX_FLOOR_DRIFT:
        flags.append(FLOOR_DRIFT)
    return flags
