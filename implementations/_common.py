"""What every built-in implementation shares: argument checks, the cases decided without
sampling, applying a mask, and the thin ``nn.Module`` wrapper.

The DropBlock math itself (gamma, seed region, block extent, normalisation) is in
:mod:`dropblock_bench.spec`; this module only wires tensors.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dropblock_bench.spec import check_positive_int, check_probability


def check_arguments(x: Tensor, p: float, block_size: int, *, layout: str = "(N, C, H, W)") -> None:
    """Raise ``ValueError`` naming the first bad argument; ``layout`` names the input's dimensions."""
    if not isinstance(x, Tensor):
        raise ValueError(f"input must be a torch.Tensor, got {type(x).__name__}")  # noqa: TRY004 - one error type for every bad argument
    rank = layout.count(",") + 1
    if x.dim() != rank:
        raise ValueError(f"input must be {rank}-D {layout}, got {x.dim()}-D shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"input must be a floating-point tensor, got {x.dtype}")
    check_probability(p)
    check_positive_int("block_size", block_size)


def output_without_sampling(x: Tensor, p: float, *, training: bool, inplace: bool) -> Tensor | None:
    """The output when no mask is needed, else ``None``.

    Eval mode or ``p == 0``: ``x`` itself. ``p == 1``: zeros (never NaN), connected to the
    autograd graph so the gradient is an honest zero.
    """
    if not training or p == 0.0 or x.numel() == 0:
        return x
    if p == 1.0:
        if inplace:
            return x.zero_()
        return x.masked_fill(torch.ones((), dtype=torch.bool, device=x.device), 0.0)
    return None


def apply_drop_mask(x: Tensor, dropped: Tensor, scale: Tensor, *, inplace: bool) -> Tensor:
    """``x * scale`` where kept, exact zeros where dropped; output dtype = ``x.dtype``.

    ``dropped`` is a bool mask broadcastable to ``x``; ``scale`` a float32 tensor of shape
    () or (N, 1, 1, 1). Dropped units are zeroed after scaling, so a huge ``scale`` can never
    turn a dropped unit into NaN.
    """
    if inplace:
        return x.mul_(scale).masked_fill_(dropped, 0.0)
    return torch.mul(x, scale).to(x.dtype).masked_fill_(dropped, 0.0)


def paint_blocks_with_max_pool(seeds: Tensor, block_size: int) -> Tensor:
    """Dilate float seeds (N, C, H, W) into squares of side ``block_size`` with ``max_pool2d``.

    ``padding = k // 2`` makes even sizes one row and column too long; cropping the last
    ones gives the centring convention of :func:`dropblock_bench.spec.block_extent`.
    """
    height, width = seeds.shape[-2:]
    pooled = F.max_pool2d(seeds, kernel_size=block_size, stride=1, padding=block_size // 2)
    return pooled[..., :height, :width]


DropBlockFunction = Callable[..., Tensor]


class DropBlock2dModule(nn.Module):
    """Base of the built-in ``DropBlock2d`` modules: stores hyper-parameters and passes
    ``self.training`` to the family's ``drop_block2d``.

    Args:
        p (float): probability of an element to be dropped, in [0, 1]. Default: 0.1.
        block_size (int): side of the dropped square. Default: 7.
        inplace (bool): write the result into the input. Default: ``False``.
    """

    function: DropBlockFunction

    def __init__(self, p: float = 0.1, block_size: int = 7, inplace: bool = False) -> None:
        super().__init__()
        check_probability(p)
        check_positive_int("block_size", block_size)
        self.p = p
        self.block_size = block_size
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        """input (Tensor[N, C, H, W]) -> Tensor[N, C, H, W] of the same dtype and device."""
        return type(self).function(input, self.p, self.block_size, training=self.training, inplace=self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, block_size={self.block_size}, inplace={self.inplace}"
