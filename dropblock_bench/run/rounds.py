"""Per-round values of a timed case: the replicates every verdict on speed is built from. Pure.

A ``dbench run`` record keeps every block's time back to back with how many blocks each round
gave (:class:`~dropblock_bench.run.records.Timing`). A round's value is the median of its
blocks, in one of two measures (:data:`MEASURES`):

- ``time``: the round's median time (ms);
- ``ratio-to-floor``: that divided by the median time of the floor op (``x * c``) timed in the
  same round, which cancels what slows the whole machine for a while (load, frequency), since
  both ran within the same second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import median
from typing import Any

from dropblock_bench.errors import DbenchError
from dropblock_bench.stats import round_medians

__all__ = ["MEASURES", "case_round_values", "check_measure", "round_value"]

MEASURES = ("ratio-to-floor", "time")
MEASURE_WORDS = {"time": "the median time of each round", "ratio-to-floor": "each round's time over x*c timed in the same round"}


def check_measure(measure: str) -> str:
    """``measure`` if it is one of :data:`MEASURES`; else a one-line error naming them."""
    if measure not in MEASURES:
        raise DbenchError(f"unknown --measure {measure!r}: use {' or '.join(MEASURES)}")
    return measure


def round_value(samples_ms: Sequence[float], floor_samples_ms: Sequence[float], measure: str) -> float:
    """One round's value from its blocks (ms): the median time, or its ratio to the floor's."""
    value = median(samples_ms)
    return value / median(floor_samples_ms) if measure == "ratio-to-floor" else value


def case_round_values(flat: Mapping[str, Any], measure: str) -> list[float] | None:
    """The per-round values of a flat case (a ``dbench run --json`` entry), or None where the
    file does not say which block belongs to which round (or a round has no floor block)."""
    samples, per_round = flat.get("samples_ms") or [], flat.get("samples_per_round") or []
    floor, floor_per_round = flat.get("floor_samples_ms") or [], flat.get("floor_samples_per_round") or []
    try:
        values = round_medians([float(s) for s in samples], [int(n) for n in per_round])
        if measure == "time":
            return values
        floors = round_medians([float(s) for s in floor], [int(n) for n in floor_per_round])
    except (ValueError, TypeError):
        return None
    if not values or len(floors) != len(values) or not all(f > 0 for f in floors):
        return None
    return [v / f for v, f in zip(values, floors, strict=True)]
