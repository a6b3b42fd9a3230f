"""DropBlock3d: DropBlock on (N, C, D, H, W) volumes, cubes instead of squares, with the paper's
law in three dimensions (the law is :mod:`dropblock_bench.families.dropblock3d`).

One contract, ``CONTRACT`` (Algorithm 1 carried to 3-D, torchvision's ``drop_block3d``:
per-channel masks, seeds where the whole cube fits, the paper's gamma with ``k**3``, batch
normalisation), two implementations:

* :func:`drop_block3d` (fast, pure torch, any device): ``fused``'s sparse-seed design. The seeds
  are drawn as gaps between Bernoulli successes (exact, at the cost of the expected number of
  seeds, not one draw per position); each paints its ``k x k x k`` cube with one index into an
  overlapping strided view of a boolean mask; the exact count gives the scale; ``x`` is read once.
* :func:`drop_block3d_reference`: the contract's reference sampler
  (:func:`~dropblock_bench.families.dropblock3d.reference_drop_mask`: dense seeds painted by
  shifts), the exact count and the scale, step by step.

``p = 1`` gives zeros, never NaN; ``training=False`` returns ``x``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dropblock_bench import spec
from dropblock_bench.families import dropblock3d as law

from ._common import check_arguments, output_without_sampling
from .family_records import DROPBLOCK3D
from .fused_sampling import sample_bernoulli_positions

__all__ = ["CONTRACT", "DropBlock3d", "drop_block3d", "drop_block3d_reference"]

CONTRACT = DROPBLOCK3D.dropblock_contract
"""Per-channel cubes, valid seeds, the paper's gamma in 3-D, batch normalisation."""


def _check(x: Tensor, p: float, block_size: int) -> None:
    check_arguments(x, p, block_size, layout="(N, C, D, H, W)")


def _apply(x: Tensor, dropped: Tensor, inplace: bool) -> Tensor:
    """``x * numel / kept`` (float32 scale from the exact count), dropped units zeroed."""
    scale = spec.kept_scale(torch.count_nonzero(dropped), dropped.numel())
    out = x.mul_(scale) if inplace else torch.mul(x, scale).to(x.dtype)
    return out.masked_fill_(dropped, 0.0)


def drop_block3d(x: Tensor, p: float, block_size: int, *, training: bool = True, inplace: bool = False,
                 generator: torch.Generator | None = None) -> Tensor:  # fmt: skip
    """DropBlock in three dimensions with the paper's contract.

    Args:
        x (Tensor[N, C, D, H, W]): floating point.
        p (float): drop probability in [0, 1].
        block_size (int): side of the dropped cubes; clamped to ``min(D, H, W)``.
        training (bool): ``False`` returns ``x``. Default ``True``.
        inplace (bool): write into ``x``. Default ``False``.
        generator (torch.Generator, optional): source of the seeds (on ``x``'s device).

    Returns:
        Tensor of ``x``'s shape, dtype and device.
    """
    _check(x, p, block_size)
    trivial = output_without_sampling(x, p, training=training, inplace=inplace)
    if trivial is not None:
        return trivial
    n, c, *spatial = x.shape
    volume = (spatial[0], spatial[1], spatial[2])
    kd, kh, kw = law.painted_block_shape(CONTRACT, volume, block_size)
    corners = (volume[0] - kd + 1, volume[1] - kh + 1, volume[2] - kw + 1)  # valid seeds: block corners
    per_map = corners[0] * corners[1] * corners[2]
    seeds = sample_bernoulli_positions(n * c * per_map, law.gamma(CONTRACT, p, volume, block_size), generator=generator, device=x.device)
    map_index, within = seeds // per_map, seeds % per_map
    depth, within = within // (corners[1] * corners[2]), within % (corners[1] * corners[2])
    top, left = within // corners[2], within % corners[2]
    dropped = torch.zeros((n * c, *volume), dtype=torch.bool, device=x.device)
    plane = volume[1] * volume[2]
    windows = dropped.as_strided((n * c, *corners, kd, kh, kw), (volume[0] * plane, plane, volume[2], 1, plane, volume[2], 1))
    windows[map_index, depth, top, left] = True  # one index per cube, k**3 units each
    return _apply(x, dropped.view(x.shape), inplace)


def drop_block3d_reference(x: Tensor, p: float, block_size: int, *, training: bool = True,
                           generator: torch.Generator | None = None) -> Tensor:  # fmt: skip
    """:func:`drop_block3d`, step by step: the reference sampler's mask (drawn on the CPU),
    the exact count, ``numel / kept``, dropped units zeroed."""
    _check(x, p, block_size)
    trivial = output_without_sampling(x, p, training=training, inplace=False)
    if trivial is not None:
        return trivial
    shape = (x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4])
    dropped = law.reference_drop_mask(CONTRACT, shape, p, block_size, generator=generator).to(x.device)
    return _apply(x, dropped, inplace=False)


class DropBlock3d(nn.Module):
    """See :func:`drop_block3d`.

    Args:
        p (float): drop probability in [0, 1]. Default 0.1.
        block_size (int): side of the dropped cubes. Default 3.
        inplace (bool): write into the input. Default ``False``.
    """

    def __init__(self, p: float = 0.1, block_size: int = 3, inplace: bool = False) -> None:
        super().__init__()
        spec.check_probability(p)
        spec.check_positive_int("block_size", block_size)
        self.p, self.block_size, self.inplace = p, block_size, inplace

    def forward(self, input: Tensor) -> Tensor:
        """input (Tensor[N, C, D, H, W]) -> Tensor of the same shape, dtype and device."""
        return drop_block3d(input, self.p, self.block_size, training=self.training, inplace=self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, block_size={self.block_size}, inplace={self.inplace}"
