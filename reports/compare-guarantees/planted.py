"""A DropBlock with a planted slowdown, for measuring whether ``dbench ab`` and ``dbench compare``
find one: ``fused`` plus an extra pass over a share of x (``DBENCH_PLANTED_EXTRA``, 0 to 1, read
at import: 0 is ``fused`` unchanged). The extra pass sums the first elements of x, that share
of them, and throws the sum away: one more read over part of x, at the cost of one small op
call. The shares of :func:`slower_10` and :func:`slower_30` were calibrated on this project's
2-core machine to slow ``fused`` forward at 8x256x56x56 by about 10 % and 30 %
(measured side by side: see README.md)."""

from __future__ import annotations

import os

import torch

from dropblock_bench import drop_block2d

EXTRA = float(os.environ.get("DBENCH_PLANTED_EXTRA", "0"))


def _slower(x: torch.Tensor, p: float, block_size: int, extra: float, inplace: bool) -> torch.Tensor:
    out = drop_block2d(x, p, block_size, inplace=inplace)
    if extra > 0:
        with torch.no_grad():
            torch.sum(x.detach().reshape(-1)[: max(1, round(extra * x.numel()))])
    return out


def drop_block(x: torch.Tensor, p: float, block_size: int, inplace: bool = False) -> torch.Tensor:
    """``fused`` with the extra pass the environment asks for."""
    return _slower(x, p, block_size, EXTRA, inplace)


def slower_10(x: torch.Tensor, p: float, block_size: int, inplace: bool = False) -> torch.Tensor:
    """``fused`` with an extra read of 22 % of x (about +10 % at 8x256x56x56; for calibrating side by side)."""
    return _slower(x, p, block_size, 0.22, inplace)


def slower_30(x: torch.Tensor, p: float, block_size: int, inplace: bool = False) -> torch.Tensor:
    """``fused`` with an extra read of 70 % of x (about +30 % at 8x256x56x56)."""
    return _slower(x, p, block_size, 0.70, inplace)
