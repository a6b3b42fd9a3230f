"""``blog-style``: the max-pool DropBlock popularised by Chinese blog posts on DropBlock.

Semantics, declared as its contract in :mod:`.records`: gamma = p / k² (``naive``); seeds
anywhere on the map, blocks cut at the border (``anywhere``); one mask per sample shared by
all channels (``shared``); blocks painted by a stride-1 ``max_pool2d`` with ``padding = k // 2``
and the extra row and column of even sizes cropped; kept units rescaled by the batch's
``numel / kept`` (``batch``). Written from that description; where the post divides by a
zero kept-count (NaN), this returns zeros, and it honours ``training``.
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
from .records import BLOG_STYLE

CONTRACT = BLOG_STYLE.dropblock_contract

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
    """Blog-style DropBlock.

    Args:
        x (Tensor[N, C, H, W]): floating-point input.
        p (float): requested drop probability in [0, 1] (this contract under-delivers it).
        block_size (int): side of the dropped squares, any positive size.
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
    n, _, height, width = x.shape
    gamma = spec.gamma(CONTRACT, p, height, width, block_size)
    seeds = torch.rand((n, 1, height, width), generator=generator, device=x.device) < gamma
    dropped = paint_blocks_with_max_pool(seeds.float(), block_size) > 0
    scale = spec.normalisation_scale(CONTRACT, dropped, p, block_size)
    return apply_drop_mask(x, dropped, scale, inplace=inplace)


class DropBlock2d(DropBlock2dModule):
    """See :func:`drop_block2d`."""

    function = staticmethod(drop_block2d)
