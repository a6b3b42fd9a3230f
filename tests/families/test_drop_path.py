"""DropPath and SpatialDropout: their contracts reduced to a unit law, checked against
brute-force enumeration of every keep pattern of a tiny input."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from dropblock_bench.families import drop_path, spatial_dropout
from dropblock_bench.families.unit_dropout import UnitLaw, constant_within_units, reference_keep_mask

SHAPE = (3, 2, 2)  # three samples of a 2 x 2 branch output


def _enumerate(unit_shape: tuple[int, ...], shape: tuple[int, ...], p: float, train_scale: float) -> tuple[float, float, float]:
    """Over every keep pattern of the units: the mean and variance of the dropped fraction and
    the mean of output**2 over elements for unit input (a zero-mean unit-variance x contributes
    the same second moment)."""
    units = math.prod(unit_shape)
    mean = second = out_second = 0.0
    for pattern in itertools.product((False, True), repeat=units):
        keep = torch.tensor(pattern).view(unit_shape).expand(shape)
        weight = math.prod(1 - p if kept else p for kept in pattern)
        fraction = 1 - float(keep.double().mean())
        mean, second = mean + weight * fraction, second + weight * fraction**2
        out_second += weight * float((keep.double() * train_scale).square().mean())
    return mean, second - mean**2, out_second


@pytest.mark.parametrize("contract", [drop_path.DropPathContract(u, s) for u in drop_path.DropPathUnit for s in drop_path.DropPathScale], ids=str)
@pytest.mark.parametrize("p", [0.2, 0.5])
def test_drop_path_law_matches_enumeration(contract, p):
    law = drop_path.law(contract, p, SHAPE)
    mean, variance, out_second = _enumerate(drop_path.unit_shape(contract, SHAPE), SHAPE, p, law.train_scale)
    assert law.drop_rate == pytest.approx(mean)
    assert law.drop_rate_variance == pytest.approx(variance)
    assert law.variance_shift == pytest.approx(out_second / law.eval_scale**2)
    assert law.mean_shift == pytest.approx(1.0)  # both scalings agree in expectation


def test_drop_path_hand_values():
    assert drop_path.unit_shape(drop_path.DEFAULT_CONTRACT, (64, 197, 768)) == (64, 1, 1)
    assert drop_path.unit_shape(drop_path.DropPathContract(unit="batch"), (32, 96, 56, 56)) == (1, 1, 1, 1)
    inverted = drop_path.law(drop_path.DEFAULT_CONTRACT, 0.2, (64, 197, 768))
    assert (inverted.train_scale, inverted.eval_scale, inverted.units) == (1.25, 1.0, 64)
    eval_time = drop_path.law(drop_path.DropPathContract(scale="eval-time"), 0.2, (8, 4))
    assert (eval_time.train_scale, eval_time.eval_scale) == (1.0, pytest.approx(0.8))
    assert inverted.variance_shift == pytest.approx(1.25) and eval_time.variance_shift == pytest.approx(1.25)
    assert drop_path.law(drop_path.DEFAULT_CONTRACT, 1.0, (4, 3)).train_scale == 0.0
    with pytest.raises(ValueError, match="'unit' must be one of row, batch, element"):
        drop_path.DropPathContract(unit="sample")


@pytest.mark.parametrize("contract", [spatial_dropout.SpatialDropoutContract(u, s) for u in spatial_dropout.SpatialDropoutUnit
                                      for s in spatial_dropout.SpatialDropoutScale], ids=str)  # fmt: skip
def test_spatial_dropout_law_matches_enumeration(contract):
    shape, p = (2, 2, 1, 2), 0.3
    law = spatial_dropout.law(contract, p, shape)
    mean, variance, out_second = _enumerate(spatial_dropout.unit_shape(contract, shape), shape, p, law.train_scale)
    assert law.drop_rate == pytest.approx(mean)
    assert law.drop_rate_variance == pytest.approx(variance)
    assert law.variance_shift == pytest.approx(out_second)
    no_scale = contract.scale is spatial_dropout.SpatialDropoutScale.NONE
    assert law.mean_shift == pytest.approx(1 - p if no_scale else 1.0)


def test_spatial_dropout_unit_shapes():
    contract = spatial_dropout.DEFAULT_CONTRACT
    assert spatial_dropout.unit_shape(contract, (32, 256, 56, 56)) == (32, 256, 1, 1)
    assert spatial_dropout.unit_shape(contract, (2, 4, 3, 8, 8)) == (2, 4, 1, 1, 1)
    assert spatial_dropout.unit_shape(spatial_dropout.SpatialDropoutContract(unit="sample"), (2, 4, 8, 8)) == (2, 1, 1, 1)
    with pytest.raises(ValueError, match="at least one spatial dimension"):
        spatial_dropout.unit_shape(contract, (2, 4))


def test_the_reference_draw_keeps_one_minus_p():
    """200,000 draws: the kept fraction within 5 standard errors of 0.7 (false alarm < 1e-6)."""
    keep = reference_keep_mask((200_000,), 0.3, generator=torch.Generator().manual_seed(0))
    assert abs(float(keep.double().mean()) - 0.7) <= 5 * math.sqrt(0.7 * 0.3 / 200_000)


def test_constant_within_units_sees_a_split_unit():
    rows = torch.tensor([True, False, True]).view(3, 1, 1).expand(3, 2, 2)
    assert constant_within_units(rows, (3, 1, 1))
    split = rows.clone()
    split[0, 1, 1] = False
    assert not constant_within_units(split, (3, 1, 1))
    assert constant_within_units(split, (3, 2, 2))


def test_a_law_refuses_impossible_values():
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        UnitLaw(1.5, 2, 1.0, 1.0)
    with pytest.raises(ValueError, match="at least one unit"):
        UnitLaw(0.5, 0, 1.0, 1.0)
