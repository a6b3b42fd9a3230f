"""``fused`` and ``fused-shared``: DropBlock written for speed, with exactly the paper's law.

Where the time goes in a textbook DropBlock is dense work on full-size float tensors: a
uniform draw per position, a ``max_pool2d`` over the whole map, a float mask, a float sum.
Here:

* **Sparse seeds.** Seeds are iid Bernoulli(gamma) over the seed positions of every map,
  taken in one flat sequence. The gaps between successive seeds of such a sequence are iid
  Geometric(gamma), so drawing gaps and summing them yields *exactly* the Bernoulli seed set
  at the cost of the expected number of seeds (about ``gamma * positions``), not one draw
  per position.
* **Sparse painting.** Each seed writes its ``k x k`` square straight into a bool mask
  (1 byte per unit; no float mask, no pooling).
* **Exact counts.** The kept count is ``count_nonzero`` (an integer), never a half sum.
* **One pass over x.** ``fused-shared`` folds the scale into its small (N, 1, H, W) mask
  and multiplies once; ``fused`` multiplies by the scalar scale and zeroes the dropped units.

The contracts (paper, and paper with a shared mask) are declared in :mod:`.records`;
``dbench verify`` checks this module against them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dropblock_bench import spec

from ._common import DropBlock2dModule, apply_drop_mask, check_arguments, output_without_sampling
from .records import FUSED, FUSED_SHARED

CONTRACT = FUSED.contract
SHARED_CONTRACT = FUSED_SHARED.contract

__all__ = [
    "CONTRACT",
    "SHARED_CONTRACT",
    "DropBlock2d",
    "DropBlock2dShared",
    "drop_block2d",
    "drop_block2d_shared",
    "sample_bernoulli_positions",
]

_PAINT_CHUNK_UNITS = 1 << 22  # bound the index temporaries of painting to ~32 MB


def sample_bernoulli_positions(
    total: int, probability: float, *, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> Tensor:
    """Sorted int64 positions in ``[0, total)``, each included independently with ``probability``.

    Exact: the gaps between included positions of an iid Bernoulli sequence are iid
    Geometric(probability) on {1, 2, ...}; we draw gaps and take running sums. Costs about
    ``total * probability`` draws instead of ``total``.
    """
    if total <= 0 or probability <= 0.0:
        return torch.empty(0, dtype=torch.int64, device=device)
    if probability >= 1.0:
        return torch.arange(total, dtype=torch.int64, device=device)
    mean = total * probability
    batch = int(mean + 8.0 * math.sqrt(mean) + 16)
    pieces: list[Tensor] = []
    last = -1.0  # position of the latest seed drawn so far
    while last < total:
        gaps = torch.empty(batch, dtype=torch.float64, device=device).geometric_(probability, generator=generator)
        positions = gaps.cumsum_(0).add_(last)  # float64 is exact for integers below 2**53
        last = float(positions[-1])
        pieces.append(positions[positions < total])
    return torch.cat(pieces).to(torch.int64)


def _paint_drop_mask(
    contract: spec.Contract,
    n_maps: int,
    height: int,
    width: int,
    block_size: int,
    gamma: float,
    generator: torch.Generator | None,
    device: torch.device,
) -> Tensor:
    """Bool drop mask (n_maps, H, W): Bernoulli(gamma) seeds on the contract's (valid) seed
    region, painted as squares of side ``block_size``."""
    rows = spec.seed_rows(contract, height, block_size)
    cols = spec.seed_rows(contract, width, block_size)
    per_map = len(rows) * len(cols)
    seeds = sample_bernoulli_positions(n_maps * per_map, gamma, generator=generator, device=device)
    dropped = torch.zeros(n_maps * height * width, dtype=torch.bool, device=device)
    before, after = spec.block_extent(block_size)
    offsets = torch.arange(-before, after + 1, device=device)
    chunk = max(1, _PAINT_CHUNK_UNITS // (block_size * block_size))
    for part in seeds.split(chunk):
        within = part % per_map
        top = (within // len(cols) + rows.start)[:, None] + offsets  # (S, k) rows painted
        left = (within % len(cols) + cols.start)[:, None] + offsets  # (S, k) columns painted
        base = (part // per_map) * (height * width)
        index = base[:, None, None] + top[:, :, None] * width + left[:, None, :]
        dropped[index.reshape(-1)] = True
    return dropped.view(n_maps, height, width)


def _drop_mask_for(x: Tensor, p: float, block_size: int, contract: spec.Contract, generator: torch.Generator | None) -> Tensor:
    n, c, height, width = x.shape
    channels = c if contract.mask is spec.MaskSharing.PER_CHANNEL else 1
    k = spec.painted_block_size(contract, height, width, block_size)
    gamma = spec.gamma(contract, p, height, width, block_size)
    return _paint_drop_mask(contract, n * channels, height, width, k, gamma, generator, x.device).view(n, channels, height, width)


def drop_block2d(
    x: Tensor,
    p: float,
    block_size: int,
    *,
    training: bool = True,
    inplace: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fast DropBlock with the paper's contract (per-channel masks, valid seeds, paper gamma,
    batch normalisation): statistically identical to ``paper``.

    Args:
        x (Tensor[N, C, H, W]): floating-point input.
        p (float): drop probability in [0, 1].
        block_size (int): side of the dropped squares; clamped to ``min(H, W)``.
        training (bool): ``False`` returns ``x`` unchanged. Default ``True``.
        inplace (bool): write into ``x``. Default ``False``.
        generator (torch.Generator, optional): source of randomness, on ``x``'s device.

    Returns:
        Tensor[N, C, H, W] with ``x``'s dtype and device. Backward saves a bool mask
        (1 byte per unit).
    """
    check_arguments(x, p, block_size)
    trivial = output_without_sampling(x, p, training=training, inplace=inplace)
    if trivial is not None:
        return trivial
    dropped = _drop_mask_for(x, p, block_size, CONTRACT, generator)
    scale = spec.normalisation_scale(CONTRACT, dropped, p, block_size)
    return apply_drop_mask(x, dropped, scale, inplace=inplace)


def drop_block2d_shared(
    x: Tensor,
    p: float,
    block_size: int,
    *,
    training: bool = True,
    inplace: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fast DropBlock with one mask per sample shared by all channels (otherwise the paper's
    contract). Arguments and result as :func:`drop_block2d`; backward saves only the small
    (N, 1, H, W) multiplier.
    """
    check_arguments(x, p, block_size)
    trivial = output_without_sampling(x, p, training=training, inplace=inplace)
    if trivial is not None:
        return trivial
    dropped = _drop_mask_for(x, p, block_size, SHARED_CONTRACT, generator)
    scale = spec.normalisation_scale(SHARED_CONTRACT, dropped, p, block_size)
    # Fold the scale into the small mask; saturate rather than overflow in half precision.
    ceiling = min(torch.finfo(x.dtype).max, torch.finfo(torch.float32).max)
    multiplier = torch.where(dropped, 0.0, scale).clamp_(max=ceiling).to(x.dtype)
    return x.mul_(multiplier) if inplace else x * multiplier


class DropBlock2d(DropBlock2dModule):
    """See :func:`drop_block2d`."""

    function = staticmethod(drop_block2d)


class DropBlock2dShared(DropBlock2dModule):
    """See :func:`drop_block2d_shared`."""

    function = staticmethod(drop_block2d_shared)
