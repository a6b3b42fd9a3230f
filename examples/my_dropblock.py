"""Your own DropBlock as a plain function, checked without registering anything.

    dbench verify --impl examples/my_dropblock.py:drop            # held to the paper's contract
    dbench run --impl examples/my_dropblock.py:drop,fused          # timed beside the built-in

``drop(x, p, block_size)`` is called in training mode; it takes no ``training`` or ``generator``
argument, so verify skips eval mode (with the reason) and seeds torch's global generator itself.
This one follows Algorithm 1 of the paper with torch.nn.functional only: seeds where a whole
block fits, the paper's gamma, a max-pool to grow seeds into centred blocks, and rescaling by
``numel / kept`` over the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def drop(x: Tensor, p: float, block_size: int) -> Tensor:
    """DropBlock of ``x`` (Tensor[N, C, H, W]): drop rate ``p``, ``block_size x block_size`` blocks."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"drop probability has to be between 0 and 1, but got {p}.")
    if p == 0.0:
        return x
    if p == 1.0:
        return torch.zeros_like(x)
    n, c, height, width = x.shape
    k = min(block_size, height, width)
    gamma = p * height * width / (k * k * (height - k + 1) * (width - k + 1))
    # Seeds on the valid region only: a centred block of size k fits around every one of them.
    seeds = torch.zeros((n, c, height, width), device=x.device)
    top, left = (k - 1) // 2, (k - 1) // 2
    seeds[:, :, top : top + height - k + 1, left : left + width - k + 1] = (
        torch.rand((n, c, height - k + 1, width - k + 1), device=x.device) < gamma
    ).float()
    # A seed at s drops s - (k - 1) // 2 ... s + k // 2; even k reach one further down and right.
    pad = (k // 2, (k - 1) // 2, k // 2, (k - 1) // 2)  # (left, right, top, bottom)
    keep = F.max_pool2d(F.pad(seeds, pad), k, stride=1) == 0
    kept = int(keep.sum())
    scale = keep.numel() / kept if kept else 0.0
    return x * (keep * scale).to(x.dtype)
