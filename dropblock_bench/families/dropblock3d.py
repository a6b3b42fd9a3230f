"""The mathematics of DropBlock3d: cubes instead of squares, on (N, C, D, H, W) inputs.

The same seven contract axes as DropBlock2d (:class:`~dropblock_bench.spec.Contract`) with a third
spatial axis: seeds ``Bernoulli(gamma)`` at the positions where a whole ``k x k x k`` block fits
(``valid``) or anywhere (blocks cut at the border), each painting the block around it, then the
normalisation. The paper's gamma in three dimensions (torchvision's ``drop_block3d``):

    gamma = p * D * H * W / (k**3 * (D - k + 1) * (H - k + 1) * (W - k + 1)),  k = min(k, D, H, W)

``naive``: ``p / k**3``. Axes are independent, so everything that :mod:`~dropblock_bench.spec`
derives per axis (seed region, block extent, coverage counts, the anchor convention for even
blocks) carries over: a position is painted by ``rows[d] * rows[i] * rows[j]`` seed positions.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from dropblock_bench.spec import (
    BatchSharing,
    BlockClamp,
    Contract,
    GammaRule,
    MaskSharing,
    Normalisation,
    SeedRegion,
    block_extent,
    check_positive_int,
    check_probability,
    coverage_counts,
    explained_by_boxes,
    scale_by_rule,
    seed_rows,
    shared_coverage_counts,
    shifted_slices,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = [
    "drop_count_variance",
    "drop_probability_volume",
    "expected_drop_rate",
    "explained_by_blocks",
    "gamma",
    "normalisation_scale",
    "painted_block_shape",
    "reference_drop_mask",
    "variance_shift",
]

Volume = tuple[int, int, int]
"""``(D, H, W)``, positions along each spatial axis."""


def _check_volume(volume: Volume, block_size: int) -> None:
    for name, value in zip(("depth", "height", "width", "block_size"), (*volume, block_size), strict=True):
        check_positive_int(name, value)


def painted_block_shape(contract: Contract, volume: Volume, block_size: int) -> Volume:
    """``(kd, kh, kw)``, the block a seed paints after the contract's clamp.

    ``clamp="min"``: the cube ``min(k, D, H, W)`` under ``valid`` seeds, ``k`` (cut at the
    border) under ``anywhere``; ``clamp="per-axis"``: ``min(k, D) x min(k, H) x min(k, W)``.
    """
    _check_volume(volume, block_size)
    if contract.clamp is BlockClamp.PER_AXIS:
        return (min(block_size, volume[0]), min(block_size, volume[1]), min(block_size, volume[2]))
    side = min(block_size, *volume) if contract.seeds is SeedRegion.VALID else block_size
    return side, side, side


def gamma(contract: Contract, p: float, volume: Volume, block_size: int) -> float:
    """The Bernoulli probability of a seed at each seed position (a probability in [0, 1]).

    ``paper``: ``p * D * H * W / (kd * kh * kw * (D - kd + 1) * (H - kh + 1) * (W - kw + 1))``
    with the clamped sides (``min`` or ``per-axis``, as :func:`painted_block_shape` under valid
    seeds); ``naive``: ``p / k**3``.
    """
    check_probability(p)
    _check_volume(volume, block_size)
    if contract.gamma is GammaRule.NAIVE:
        return p / block_size**3
    clamped = contract.replace(seeds=SeedRegion.VALID) if contract.clamp is BlockClamp.MIN else contract
    sides = painted_block_shape(clamped, volume, block_size)
    return p * math.prod(volume) / math.prod(k * (n - k + 1) for k, n in zip(sides, volume, strict=True))


def _axis_coverage(contract: Contract, volume: Volume, block_size: int) -> list[list[int]]:
    sides = painted_block_shape(contract, volume, block_size)
    return [coverage_counts(contract, n, k) for n, k in zip(volume, sides, strict=True)]


def _covering_seeds(contract: Contract, volume: Volume, block_size: int) -> torch.Tensor:
    """``n(d, i, j)``: how many seed positions paint each position, float64 (D, H, W)."""
    import torch

    depth, rows, cols = (torch.tensor(c, dtype=torch.float64) for c in _axis_coverage(contract, volume, block_size))
    return depth[:, None, None] * rows[None, :, None] * cols[None, None, :]


def drop_probability_volume(contract: Contract, p: float, volume: Volume, block_size: int) -> torch.Tensor:
    """Exact probability that each position is dropped: float64 (D, H, W).

    ``1 - (1 - gamma) ** n(d, i, j)``, ``n`` the number of seed positions whose block covers the
    position. The same for per-channel and shared masks. All ones at ``p = 1``.
    """
    import torch

    if p == 1.0:
        return torch.ones(volume, dtype=torch.float64)
    g = gamma(contract, p, volume, block_size)
    log_keep = math.log1p(-g) if g < 1.0 else -math.inf
    covered = _covering_seeds(contract, volume, block_size)
    return torch.where(covered > 0, -torch.expm1(covered * log_keep), torch.zeros_like(covered))


def expected_drop_rate(contract: Contract, p: float, volume: Volume, block_size: int) -> float:
    """Exact expected fraction of dropped units (the mean of :func:`drop_probability_volume`)."""
    return float(drop_probability_volume(contract, p, volume, block_size).mean())


def drop_count_variance(contract: Contract, p: float, volume: Volume, block_size: int) -> float:
    """Exact variance of the number of dropped units in one (D, H, W) map (units squared).

    ``sum over unit pairs (u, v) of (1 - gamma) ** (n_u + n_v - n_uv) - (1 - gamma) ** (n_u + n_v)``,
    ``n_uv`` the seed positions whose block covers both (a product over the three axes). Costs
    ``(D * H * W) ** 2`` operations: meant for the small maps a verifier samples.
    """
    import torch

    if p in (0.0, 1.0):
        return 0.0
    log_keep = math.log1p(-gamma(contract, p, volume, block_size))
    sides = painted_block_shape(contract, volume, block_size)
    covered = _covering_seeds(contract, volume, block_size).flatten()  # n_u, (D*H*W,)
    shared_d, shared_h, shared_w = (
        torch.tensor(shared_coverage_counts(contract, n, k), dtype=torch.float64)
        for n, k in zip(volume, sides, strict=True)
    )
    shared_hw = (shared_h[:, None, :, None] * shared_w[None, :, None, :]).reshape(volume[1] * volume[2], -1)
    plane = volume[1] * volume[2]
    total = 0.0
    for d in range(volume[0]):
        for d2 in torch.nonzero(shared_d[d]).flatten().tolist():  # planes sharing a seed with d
            both = covered[d * plane : (d + 1) * plane, None] + covered[None, d2 * plane : (d2 + 1) * plane]
            joint = torch.exp(log_keep * (both - shared_d[d, d2] * shared_hw))
            total += float((joint - torch.exp(log_keep * both)).sum())
    return max(total, 0.0)


def reference_drop_mask(
    contract: Contract,
    shape: tuple[int, int, int, int, int],
    p: float,
    block_size: int,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A boolean drop mask sampled straight from the contract: dense Bernoulli(gamma) seeds on
    the seed region, each painted by explicit shifts. Shape (N, C, D, H, W), or (N, 1, D, H, W)
    for a shared mask; a batch-shared contract repeats one sample's draw N times."""
    import torch

    n, c, *spatial = shape
    volume: Volume = (spatial[0], spatial[1], spatial[2])
    channels = c if contract.mask is MaskSharing.PER_CHANNEL else 1
    if p == 1.0:
        return torch.ones((n, channels, *volume), dtype=torch.bool)
    draws_n = 1 if contract.batch is BatchSharing.SHARED else n
    sides = painted_block_shape(contract, volume, block_size)
    regions = [seed_rows(contract, size, k) for size, k in zip(volume, sides, strict=True)]
    seeds = torch.zeros((draws_n, channels, *volume), dtype=torch.bool)
    draws = torch.rand((draws_n, channels, *(len(r) for r in regions)), generator=generator, dtype=torch.float64)
    seeds[:, :, regions[0].start : regions[0].stop, regions[1].start : regions[1].stop, regions[2].start : regions[2].stop] = (
        draws < gamma(contract, p, volume, block_size)
    )
    dropped = torch.zeros_like(seeds)
    extents = [block_extent(k, contract.anchor) for k in sides]
    for dz in range(-extents[0][0], extents[0][1] + 1):  # a seed at s paints s + offset
        for dy in range(-extents[1][0], extents[1][1] + 1):
            for dx in range(-extents[2][0], extents[2][1] + 1):
                dst, src = zip(*(shifted_slices(size, off) for size, off in zip(volume, (dz, dy, dx), strict=True)), strict=True)
                dropped[(..., *dst)] |= seeds[(..., *src)]
    return dropped.expand(n, -1, -1, -1, -1).clone()



def explained_by_blocks(contract: Contract, dropped: torch.Tensor, block_size: int) -> torch.Tensor:
    """Whether each volume of a bool drop mask (..., D, H, W) is a union of the contract's
    blocks (painted shape, anchor, seed region, cut at the border for ``anywhere`` seeds), as
    :func:`~dropblock_bench.spec.explained_by_blocks` in 2-D. Exact; shape ``dropped.shape[:-3]``."""
    volume: Volume = (dropped.shape[-3], dropped.shape[-2], dropped.shape[-1])
    sides = painted_block_shape(contract, volume, block_size)
    regions = [seed_rows(contract, size, side) for size, side in zip(volume, sides, strict=True)]
    return explained_by_boxes(dropped, regions, [block_extent(side, contract.anchor) for side in sides])


def normalisation_scale(contract: Contract, dropped: torch.Tensor, p: float, block_size: int) -> torch.Tensor:
    """The factor kept units are multiplied by (float32), for a bool drop mask (N, C, D, H, W) or
    (N, 1, D, H, W): DropBlock2d's rule (:func:`~dropblock_bench.spec.scale_by_rule`) with the
    3-D expected rate; shape () for ``batch``, ``expected`` and ``none``, (N, 1, 1, 1, 1) for
    ``sample``; 0 where nothing is kept."""
    volume: Volume = (dropped.shape[-3], dropped.shape[-2], dropped.shape[-1])
    return scale_by_rule(contract.norm, dropped, lambda: expected_drop_rate(contract, p, volume, block_size))


def variance_shift(contract: Contract, p: float, volume: Volume, block_size: int) -> tuple[float, bool]:
    """``Var(training output) / Var(eval output)`` for zero-mean unit-variance input, and whether
    it is exact: ``1 - rate`` without normalisation (exact); ``1 / (1 - rate)`` with it, the limit
    on large inputs, where the random scale concentrates on ``1 / (1 - rate)``."""
    rate = expected_drop_rate(contract, p, volume, block_size)
    if contract.norm is Normalisation.NONE:
        return 1.0 - rate, True
    return (1.0 / (1.0 - rate) if rate < 1.0 else math.inf), False
