"""``paper``: Algorithm 1 of Ghiasi, Lin and Le, "DropBlock: A regularization method for
convolutional networks" (NeurIPS 2018), step by step.

1. ``training=False`` returns the input.
2. gamma from the paper's formula (``k`` clamped to ``min(H, W)``, so large blocks work).
3. Seeds ``M ~ Bernoulli(gamma)`` independently per sample and channel, only where the whole
   block fits in the map (the valid region; H and W handled separately).
4. Each seed zeroes the ``k x k`` square centred on it.
5. ``x * M * count(M) / count_ones(M)`` with the count over the whole batch.

The reference the faster implementations are checked against; clarity over speed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dropblock_bench import spec

from ._common import (
    DropBlock2dModule,
    apply_drop_mask,
    check_arguments,
    output_without_sampling,
    paint_blocks_with_max_pool,
)
from .records import PAPER

CONTRACT = PAPER.dropblock_contract

__all__ = ["CONTRACT", "DropBlock2d", "drop_block2d"]


def drop_block2d(
    x: Tensor,
    p: float,
    block_size: int,
    *,
    training: bool = True,
    inplace: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """DropBlock exactly as Algorithm 1 of the paper.

    Args:
        x (Tensor[N, C, H, W]): floating-point input.
        p (float): drop probability in [0, 1] (the paper's ``1 - keep_prob``).
        block_size (int): side of the dropped squares; clamped to ``min(H, W)``.
        training (bool): ``False`` returns ``x`` unchanged. Default ``True``.
        inplace (bool): write into ``x``. Default ``False``.
        generator (torch.Generator, optional): source of randomness, on ``x``'s device.

    Returns:
        Tensor[N, C, H, W] with ``x``'s dtype and device.
    """
    check_arguments(x, p, block_size)
    trivial = output_without_sampling(x, p, training=training, inplace=inplace)
    if trivial is not None:
        return trivial
    n, c, height, width = x.shape
    k = spec.painted_block_size(CONTRACT, height, width, block_size)
    gamma = spec.gamma(CONTRACT, p, height, width, block_size)
    rows, cols = spec.seed_rows(CONTRACT, height, k), spec.seed_rows(CONTRACT, width, k)
    draws = torch.rand((n, c, len(rows), len(cols)), generator=generator, device=x.device)
    seeds = torch.zeros((n, c, height, width), device=x.device)
    seeds[:, :, rows.start : rows.stop, cols.start : cols.stop] = (draws < gamma).float()
    dropped = paint_blocks_with_max_pool(seeds, k) > 0
    scale = spec.normalisation_scale(CONTRACT, dropped, p, block_size)
    return apply_drop_mask(x, dropped, scale, inplace=inplace)


class DropBlock2d(DropBlock2dModule):
    """See :func:`drop_block2d`."""

    function = staticmethod(drop_block2d)
