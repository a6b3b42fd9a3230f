"""A small DropBlock that keeps the paper's contract (Ghiasi, Lin and Le, NeurIPS 2018, Algorithm 1).

Seeds fall only where a whole block fits, with the paper's gamma; each seed drops the
``k x k`` block whose top-left corner it marks (on the valid region, the same law as a block
centred on a valid centre); kept units are rescaled by ``numel / kept`` over the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def drop_block2d(
    x: Tensor,
    p: float,
    block_size: int,
    *,
    training: bool = True,
    inplace: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Drop ``block_size x block_size`` blocks of ``x`` (Tensor[N, C, H, W]) with drop rate ``p``.

    Returns ``x`` itself in eval mode or at ``p = 0`` and zeros at ``p = 1``. In-place
    operation is not supported (``inplace=True`` raises).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"drop probability has to be between 0 and 1, but got {p}.")
    if block_size < 1:
        raise ValueError(f"block_size has to be a positive integer, but got {block_size}.")
    if x.dim() != 4:
        raise ValueError(f"input has to be 4-dimensional (N, C, H, W), but got {x.dim()} dimensions.")
    if inplace:
        raise ValueError("this example DropBlock does not work in place")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return torch.zeros_like(x)
    n, c, height, width = x.shape
    k = min(block_size, height, width)  # a block larger than the map is clamped to fit it
    gamma = p * height * width / (k * k * (height - k + 1) * (width - k + 1))
    corners = torch.rand((n, c, height - k + 1, width - k + 1), generator=generator, device=x.device) < gamma
    # A corner at (i, j) drops rows i..i+k-1 and columns j..j+k-1: pad by k-1 and max-pool.
    keep = F.max_pool2d(F.pad(corners.float(), (k - 1, k - 1, k - 1, k - 1)), k, stride=1) == 0
    kept = int(keep.sum())  # a boolean sum is an exact int64 count, whatever x's dtype
    scale = keep.numel() / kept if kept else 0.0  # nothing kept: zeros, never NaN
    return x * (keep * scale).to(x.dtype)
