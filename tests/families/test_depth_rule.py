"""The depth rules of stochastic depth against hand values."""

from __future__ import annotations

import pytest

from dropblock_bench.families.depth_rule import linear_drop_rates, linspace_drop_rates


def test_the_linear_rule_is_huang_et_al_in_drop_form():
    # keep_l = 1 - l / L * (1 - keep_L) with keep_L = 0.5 and L = 4: 0.875, 0.75, 0.625, 0.5
    assert linear_drop_rates(4, 0.5) == pytest.approx([0.125, 0.25, 0.375, 0.5])
    assert linear_drop_rates(1, 0.2) == [0.2]


def test_the_linspace_rule_is_timms():
    assert linspace_drop_rates(4, 0.3) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert linspace_drop_rates(12, 0.1)[-1] == pytest.approx(0.1)
    assert linspace_drop_rates(1, 0.3) == [0.0]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="layers must be a positive integer"):
        linear_drop_rates(0, 0.1)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        linspace_drop_rates(3, 1.2)
