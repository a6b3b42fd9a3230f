"""Per-round values of a run-file case, in both measures."""

from __future__ import annotations

import pytest

from dropblock_bench.errors import DbenchError
from dropblock_bench.run.rounds import case_round_values, check_measure, round_value

FLAT = {
    "samples_ms": [2.0, 4.0, 3.0, 9.0, 5.0],
    "samples_per_round": [2, 3],
    "floor_samples_ms": [1.0, 1.0, 2.0],
    "floor_samples_per_round": [1, 2],
}


def test_a_round_is_the_median_of_its_blocks_alone_or_over_its_floor():
    assert case_round_values(FLAT, "time") == [3.0, 5.0]
    assert case_round_values(FLAT, "ratio-to-floor") == [3.0, 5.0 / 1.5]
    assert round_value([1.0, 3.0, 2.0], [0.5], "ratio-to-floor") == 4.0


@pytest.mark.parametrize(
    "change",
    [{"samples_per_round": []}, {"samples_per_round": [2, 2]}, {"floor_samples_per_round": [3]}, {"floor_samples_ms": [0.0, 1.0, 2.0]}],
)
def test_rounds_that_cannot_be_told_apart_are_none(change):
    flat = {**FLAT, **change}
    values = [case_round_values(flat, "ratio-to-floor")]
    if "floor" not in next(iter(change)):
        values.append(case_round_values(flat, "time"))
    assert values == [None] * len(values)


def test_an_unknown_measure_is_one_line():
    with pytest.raises(DbenchError, match="ratio-to-floor or time"):
        check_measure("speed")
