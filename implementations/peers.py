"""Adapters for public DropBlock implementations. They import the libraries; no code is copied.

Each adapter exposes the shared signature ``fn(x, p, block_size, *, training=True,
inplace=False, generator=None)``. None of these libraries takes a generator, so the verifier
seeds torch's global RNG for them (their records say ``supports_generator=False``).
"""

from __future__ import annotations

import torch
from torch import Tensor


def torchvision_drop_block2d(
    x: Tensor, p: float, block_size: int, *, training: bool = True, inplace: bool = False, generator: torch.Generator | None = None
) -> Tensor:
    """``torchvision.ops.drop_block2d`` (odd block sizes only; the kept count is summed in x's dtype)."""
    from torchvision.ops import drop_block2d

    return drop_block2d(x, p, block_size, inplace=inplace, training=training)


def _timm(x: Tensor, p: float, block_size: int, training: bool, inplace: bool, couple_channels: bool) -> Tensor:
    from timm.layers import DropBlock2d

    module = DropBlock2d(drop_prob=p, block_size=block_size, inplace=inplace, couple_channels=couple_channels)
    return module.train(training)(x)


def timm_drop_block2d(
    x: Tensor, p: float, block_size: int, *, training: bool = True, inplace: bool = False, generator: torch.Generator | None = None
) -> Tensor:
    """``timm.layers.DropBlock2d`` as it ships (``couple_channels=True``: one mask for all channels)."""
    return _timm(x, p, block_size, training, inplace, couple_channels=True)


def timm_per_channel_drop_block2d(
    x: Tensor, p: float, block_size: int, *, training: bool = True, inplace: bool = False, generator: torch.Generator | None = None
) -> Tensor:
    """``timm.layers.DropBlock2d(couple_channels=False)``: one mask per channel."""
    return _timm(x, p, block_size, training, inplace, couple_channels=False)


def dropblock_package_drop_block2d(
    x: Tensor, p: float, block_size: int, *, training: bool = True, inplace: bool = False, generator: torch.Generator | None = None
) -> Tensor:
    """``dropblock.DropBlock2D`` from the ``dropblock`` package (no in-place mode)."""
    from dropblock import DropBlock2D

    if inplace:
        raise NotImplementedError("the dropblock package has no in-place mode")
    return DropBlock2D(drop_prob=p, block_size=block_size).train(training)(x)
