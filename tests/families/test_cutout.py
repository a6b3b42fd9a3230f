"""Cutout's law against brute-force enumeration of every placement of the holes on tiny images,
each hole cut the way the reference code cuts it (``clip(y - L // 2, 0, H)`` up to
``clip(y + L // 2, 0, H)``, exclusive)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from dropblock_bench.families import cutout
from dropblock_bench.families.cutout import CutoutContract

GEOMETRIES = [(4, 5, 2, 1), (4, 5, 3, 1), (3, 4, 2, 2), (5, 4, 4, 1), (3, 3, 1, 2), (4, 4, 3, 2)]  # H, W, L, holes


def _enumerate(contract: CutoutContract, height: int, width: int, length: int, holes: int) -> list[np.ndarray]:
    """One cut-out mask per equally likely placement of the holes."""
    if contract.centre is cutout.CutoutCentre.ANYWHERE:
        centres = list(itertools.product(range(height), range(width)))
    else:  # the whole unclipped patch inside the image
        half = length // 2
        centres = [(y, x) for y, x in itertools.product(range(height), range(width))
                   if y - half >= 0 and y + half <= height and x - half >= 0 and x + half <= width]  # fmt: skip
    masks = []
    for placement in itertools.product(centres, repeat=holes):
        mask = np.zeros((height, width), dtype=bool)
        for y, x in placement:
            y1, y2 = np.clip(y - length // 2, 0, height), np.clip(y + length // 2, 0, height)
            x1, x2 = np.clip(x - length // 2, 0, width), np.clip(x + length // 2, 0, width)
            mask[y1:y2, x1:x2] = True
        masks.append(mask)
    return masks


@pytest.mark.parametrize("centre", list(cutout.CutoutCentre))
@pytest.mark.parametrize(("height", "width", "length", "holes"), GEOMETRIES)
def test_the_law_matches_enumeration(centre, height, width, length, holes):
    contract = CutoutContract(centre=centre)
    masks = np.stack(_enumerate(contract, height, width, length, holes)).astype(np.float64)
    probability = torch.from_numpy(masks.mean(0))
    torch.testing.assert_close(cutout.masked_probability_map(contract, holes, length, height, width), probability)
    assert cutout.expected_masked_fraction(contract, holes, length, height, width) == pytest.approx(float(probability.mean()))
    counts = masks.sum(axis=(1, 2))
    assert cutout.masked_count_variance(contract, holes, length, height, width) == pytest.approx(counts.var(), abs=1e-9)
    kept = height * width - counts
    scaled = np.where(kept > 0, height * width / np.maximum(kept, 1), 0.0)  # E[s**2 * kept / HW] = E[HW / kept]
    rescaled = CutoutContract(centre=centre, rescale="kept-fraction")
    assert cutout.variance_shift(rescaled, holes, length, height, width) == pytest.approx(scaled.mean())
    assert cutout.variance_shift(contract, holes, length, height, width) == pytest.approx(1 - float(probability.mean()))


def test_the_patch_side_and_centres():
    assert [cutout.patch_side(length) for length in (1, 2, 3, 16, 17)] == [0, 2, 2, 16, 16]
    assert cutout.centre_positions(cutout.DEFAULT_CONTRACT, 32, 16) == range(32)
    assert cutout.centre_positions(CutoutContract(centre="fits"), 32, 16) == range(8, 25)
    with pytest.raises(ValueError, match="does not fit in 8 positions"):
        cutout.centre_positions(CutoutContract(centre="fits"), 8, 10)
    with pytest.raises(ValueError, match="'holes' must be one of shared, per-channel"):
        CutoutContract(holes="per-image")


def test_cifar_hand_value():
    """One 16-pixel hole on 32 x 32, centres anywhere: centres 0-7 cut rows 0 to c + 7 (8-15
    rows), 8-24 cut 16, 25-31 cut 15 down to 9: 92 + 272 + 84 = 448 (centre, row) pairs, so the
    row chances sum to 448 / 32 = 14 and the expected cut-out fraction is (14 / 32) ** 2."""
    rows = cutout.hole_rows(cutout.DEFAULT_CONTRACT, 32, 16)
    assert math.fsum(rows) == pytest.approx(14.0)
    assert cutout.expected_masked_fraction(cutout.DEFAULT_CONTRACT, 1, 16, 32, 32) == pytest.approx((14 / 32) ** 2)


@pytest.mark.parametrize("contract", [cutout.DEFAULT_CONTRACT, CutoutContract(centre="fits", holes="per-channel")], ids=str)
def test_the_reference_sampler_follows_the_law(contract):
    """Per-pixel frequencies over 6000 maps within 5 standard errors of the exact chance."""
    shape, holes, length = (2000, 3, 6, 7), 2, 3
    masked = cutout.reference_cutout_mask(contract, shape, holes, length, generator=torch.Generator().manual_seed(0))
    assert masked.shape == (2000, 3 if contract.holes is cutout.CutoutHoles.PER_CHANNEL else 1, 6, 7)
    maps = masked.flatten(0, 1).double()
    exact = cutout.masked_probability_map(contract, holes, length, 6, 7)
    error = (exact * (1 - exact) / maps.shape[0]).sqrt()
    assert bool(((maps.mean(0) - exact).abs() <= 5 * error + 1e-12).all())


def test_enumeration_too_large_is_refused():
    with pytest.raises(ValueError, match="hole placements to enumerate"):
        cutout.variance_shift(CutoutContract(rescale="kept-fraction"), 2, 16, 32, 32)
