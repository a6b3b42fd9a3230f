"""DropBlock3d's law against brute-force enumeration of every seed set on tiny volumes."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from dropblock_bench import spec
from dropblock_bench.families import dropblock3d
from dropblock_bench.spec import Contract

CONTRACTS = [Contract(seeds=s, gamma=g, anchor=a, clamp=c)
             for s, g, a, c in itertools.product(spec.SeedRegion, spec.GammaRule, spec.Anchor, spec.BlockClamp)]  # fmt: skip
VOLUMES = [((2, 3, 3), 2), ((2, 2, 3), 2), ((3, 2, 2), 1), ((1, 3, 4), 3), ((2, 3, 2), 3)]


def _enumerate(contract: Contract, p: float, volume: tuple[int, int, int], k: int) -> tuple[torch.Tensor, float]:
    """Every seed set on the seed region with its probability: exact per-position drop
    probabilities and the exact variance of the dropped count, painted unit by unit."""
    sides = dropblock3d.painted_block_shape(contract, volume, k)
    regions = [spec.seed_rows(contract, n, s) for n, s in zip(volume, sides, strict=True)]
    extents = [spec.block_extent(s, contract.anchor) for s in sides]
    positions = list(itertools.product(*regions))
    g = dropblock3d.gamma(contract, p, volume, k)
    probability = torch.zeros(volume, dtype=torch.float64)
    mean = second = 0.0
    for chosen in itertools.product((False, True), repeat=len(positions)):
        weight = math.prod(g if c else 1 - g for c in chosen)
        dropped = torch.zeros(volume, dtype=torch.bool)
        for seed, on in zip(positions, chosen, strict=True):
            if on:
                box = tuple(slice(max(s - e[0], 0), min(s + e[1] + 1, n)) for s, e, n in zip(seed, extents, volume, strict=True))
                dropped[box] = True
        probability += weight * dropped.double()
        count = int(dropped.sum())
        mean, second = mean + weight * count, second + weight * count**2
    return probability, second - mean**2


def test_gamma_is_the_papers_rule_in_three_dimensions():
    paper = Contract()
    assert dropblock3d.gamma(paper, 0.1, (8, 16, 16), 3) == pytest.approx(0.1 * 8 * 16 * 16 / (27 * 6 * 14 * 14))
    assert dropblock3d.gamma(paper, 0.1, (2, 16, 16), 3) == pytest.approx(0.1 * 2 * 16 * 16 / (8 * 1 * 15 * 15))  # k clamped to 2
    assert dropblock3d.gamma(Contract(gamma="naive"), 0.1, (8, 16, 16), 3) == pytest.approx(0.1 / 27)
    per_axis = Contract(clamp="per-axis")
    assert dropblock3d.gamma(per_axis, 0.1, (2, 16, 16), 3) == pytest.approx(0.1 * 2 * 16 * 16 / (2 * 3 * 3 * 1 * 14 * 14))


# Seeds anywhere: every position is a seed position, so 2**positions seed sets; kept to 12.
CASES = [(c, v, k) for c in CONTRACTS for v, k in VOLUMES if c.seeds is spec.SeedRegion.VALID or math.prod(v) <= 12]


@pytest.mark.parametrize(("contract", "volume", "k"), CASES, ids=lambda value: str(value).replace(" ", ""))
def test_probabilities_and_count_variance_match_enumeration(contract, volume, k):
    p = 0.3
    probability, variance = _enumerate(contract, p, volume, k)
    torch.testing.assert_close(dropblock3d.drop_probability_volume(contract, p, volume, k), probability, rtol=1e-12, atol=1e-12)
    assert dropblock3d.expected_drop_rate(contract, p, volume, k) == pytest.approx(float(probability.mean()), rel=1e-12)
    assert dropblock3d.drop_count_variance(contract, p, volume, k) == pytest.approx(variance, rel=1e-9, abs=1e-12)


def test_block_shapes_by_hand():
    assert dropblock3d.painted_block_shape(Contract(), (2, 16, 16), 3) == (2, 2, 2)  # clamped to the smallest side
    assert dropblock3d.painted_block_shape(Contract(seeds="anywhere"), (2, 16, 16), 3) == (3, 3, 3)  # cut at the border
    assert dropblock3d.painted_block_shape(Contract(clamp="per-axis"), (2, 16, 5), 7) == (2, 7, 5)


def test_a_single_plane_volume_is_the_2d_law():
    contract, p = Contract(clamp="per-axis"), 0.2
    got = dropblock3d.drop_probability_volume(contract, p, (1, 7, 9), 3)[0]
    want = spec.drop_probability_map(contract, p, 7, 9, 3)
    # per-axis clamp keeps depth 1: 3-D gamma over a 1 x 3 x 3 block equals the 2-D one
    torch.testing.assert_close(got, want)


def test_p_one_and_zero():
    assert bool((dropblock3d.drop_probability_volume(Contract(), 1.0, (2, 3, 3), 2) == 1).all())
    assert dropblock3d.expected_drop_rate(Contract(), 0.0, (2, 3, 3), 2) == 0.0
    assert dropblock3d.drop_count_variance(Contract(), 1.0, (2, 3, 3), 2) == 0.0


@pytest.mark.parametrize("contract", [Contract(), Contract(seeds="anywhere", anchor="down-right"), Contract(mask="shared")], ids=str)
def test_the_reference_sampler_follows_the_law(contract):
    """Per-position frequencies over 4000 volumes within 5 standard errors of the exact
    probability (a false alarm: below 1e-5 for all positions together)."""
    volume, k, p = (3, 4, 4), 2, 0.3
    masks = dropblock3d.reference_drop_mask(contract, (500, 8, *volume), p, k, generator=torch.Generator().manual_seed(0))
    assert masks.shape == (500, 8 if contract.mask is spec.MaskSharing.PER_CHANNEL else 1, *volume)
    frequency = masks.flatten(0, 1).double().mean(0)
    exact = dropblock3d.drop_probability_volume(contract, p, volume, k)
    error = (exact * (1 - exact) / masks.flatten(0, 1).shape[0]).sqrt()
    assert bool(((frequency - exact).abs() <= 5 * error + 1e-12).all())


def test_a_batch_shared_contract_repeats_one_draw():
    masks = dropblock3d.reference_drop_mask(Contract(batch="shared"), (4, 2, 3, 5, 5), 0.4, 2, generator=torch.Generator().manual_seed(1))
    assert bool((masks == masks[:1]).all())
