"""Correct DropBlocks written in three styles unlike the built-ins, for the false-alarm tests.

Each follows the paper's contract exactly; they differ in how they get there, the way real
implementations do: seeds as block centres, seeds as block corners, and no shortcut for
p = 0 (so p = 0 gives ``x * numel / kept``, off by float rounding, a warning and not a failure).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dropblock_bench.registry import Implementation


def _gamma(p: float, h: int, w: int, k: int) -> float:
    return p * h * w / (k * k * (h - k + 1) * (w - k + 1))


def _scaled(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    kept = keep.sum(dtype=torch.float64)
    scale = (keep.numel() / kept).float() if kept > 0 else torch.zeros(())
    return (x * keep.to(x.dtype) * scale.to(x.dtype)).to(x.dtype)


def centre_seeds(x, p, block_size, *, training=True, inplace=False, generator=None):
    """Seeds on the valid region as block centres, dilated by a centred max-pool."""
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return torch.zeros_like(x)
    n, c, h, w = x.shape
    k = min(block_size, h, w)
    seeds = torch.zeros((n, c, h, w), device=x.device)
    top, left = (k - 1) // 2, (k - 1) // 2
    draws = torch.rand((n, c, h - k + 1, w - k + 1), generator=generator, device=x.device)
    seeds[:, :, top : top + h - k + 1, left : left + w - k + 1] = (draws < _gamma(p, h, w, k)).float()
    dropped = F.max_pool2d(seeds, k, stride=1, padding=k // 2)[..., :h, :w] > 0
    return _scaled(x, ~dropped)


def corner_seeds(x, p, block_size, *, training=True, inplace=False, generator=None):
    """Seeds on an (H - k + 1) x (W - k + 1) grid as the blocks' top-left corners."""
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return torch.zeros_like(x)
    n, c, h, w = x.shape
    k = min(block_size, h, w)
    corners = (torch.rand((n, c, h - k + 1, w - k + 1), generator=generator, device=x.device) < _gamma(p, h, w, k)).float()
    dropped = F.max_pool2d(F.pad(corners, (k - 1, k - 1, k - 1, k - 1)), k, stride=1) > 0
    return _scaled(x, ~dropped)


def no_p0_shortcut(x, p, block_size, *, training=True, inplace=False, generator=None):
    """Always samples, even at p = 0, and rescales with ``x * keep * numel / kept`` in that order
    (in float32, so half-precision counts cannot overflow)."""
    if not training:
        return x
    n, c, h, w = x.shape
    k = min(block_size, h, w)
    gamma = _gamma(p, h, w, k) if p < 1.0 else 1.0
    corners = (torch.rand((n, c, h - k + 1, w - k + 1), generator=generator, device=x.device) < gamma).float()
    keep = (F.max_pool2d(F.pad(corners, (k - 1, k - 1, k - 1, k - 1)), k, stride=1) == 0).float()
    kept = keep.sum(dtype=torch.float64)
    if kept == 0:
        return x * 0
    return (x.float() * keep * keep.numel() / kept.float()).to(x.dtype)


def _record(fn) -> Implementation:
    return Implementation(name=fn.__name__.replace("_", "-"), target=fn, description=fn.__doc__.splitlines()[0],
                          supports_inplace=False, origin="tests")  # fmt: skip


CORRECT = tuple(_record(fn) for fn in (centre_seeds, corner_seeds, no_p0_shortcut))
