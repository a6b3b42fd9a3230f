"""DropBlock3d: DropBlock on (N, C, D, H, W) volumes, cubes instead of squares, with the paper's
law in three dimensions (the law is :mod:`dropblock_bench.families.dropblock3d`).

One contract, ``CONTRACT`` (Algorithm 1 carried to 3-D, torchvision's ``drop_block3d``:
per-channel masks, seeds where the whole cube fits, the paper's gamma with ``k**3``, batch
normalisation), two implementations:

* :func:`drop_block3d` (fast, pure torch, any device): ``fused``'s sparse-seed design. The seeds
  are drawn as gaps between Bernoulli successes (exact, at the cost of the expected number of
  seeds, not one draw per position); the cubes' units are filled into a one-byte mask, whose
  exact count gives the scale; then ``x * scale`` with the cubes zeroed is written in one pass,
  by ``fused``'s CPU kernel (a cube is a square in each of k consecutive planes) or elsewhere
  by ``x * scale`` and a scattered fill. ``x`` is read once; backward saves the cubes'
  corners, not a mask.
* :func:`drop_block3d_reference`: the contract's reference sampler
  (:func:`~dropblock_bench.families.dropblock3d.reference_drop_mask`: dense seeds painted by
  shifts), the exact count and the scale, step by step.

``p = 1`` gives zeros, never NaN; ``training=False`` returns ``x``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from dropblock_bench import spec
from dropblock_bench.families import dropblock3d as law

from . import fused_backends, fused_cpu
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


@dataclasses.dataclass(frozen=True)
class _Cubes:
    """One call's dropped cubes on an (N, C, D, H, W) input: ``corners``, the flat index of
    each cube's first unit (int64, ascending), and the cubes' side ``k``."""

    corners: Tensor
    shape: tuple[int, int, int, int, int]
    k: int

    def unit_index(self) -> Tensor:
        """The flat index of every unit of every cube (``k**3`` per cube; overlaps repeat)."""
        _, _, _, height, width = self.shape
        steps = torch.arange(self.k, device=self.corners.device)
        offsets = (steps[:, None, None] * (height * width) + steps[None, :, None] * width + steps[None, None, :]).view(-1)
        return (self.corners[:, None] + offsets).view(-1)

    def plane_seeds(self) -> fused_cpu.Seeds:
        """The cubes as the CPU kernel's 2-D seeds: a cube is a k x k square in each of ``k``
        consecutive (H, W) planes; planes are the kernel's masks, square corners its positions."""
        _, _, _, height, width = self.shape
        plane, within = self.corners // (height * width), self.corners % (height * width)
        cols = width - self.k + 1
        position = within // width * cols + within % width
        per_mask = (height - self.k + 1) * cols
        steps = torch.arange(self.k, device=self.corners.device)
        flat = ((plane[:, None] + steps) * per_mask + position[:, None]).view(-1)
        masks = self.shape[0] * self.shape[1] * self.shape[2]
        return fused_cpu.Seeds(flat.sort().values, masks, per_mask)


def _scale_and_zero(t: Tensor, scale: Tensor, cubes: _Cubes, inplace: bool) -> Tensor:
    """``t * scale`` with the cubes' units zeroed, ``t`` read once: on the CPU kernel's apply
    pass where it takes ``t`` (the cubes as squares in consecutive planes), else ``t * scale``
    and a scattered fill of the cubes' units."""
    kernel = fused_backends.cpu_kernel(t)
    if kernel is not None and t.is_contiguous():
        _, _, _, height, width = cubes.shape
        k = cubes.k
        geometry = fused_cpu.SeedGeometry(height, width, k, 0, height - k + 1, 0, width - k + 1, 0.0)
        seeds = cubes.plane_seeds()
        out = t if inplace else fused_backends.fresh_output(t)
        kernel.plan(geometry, seeds.masks, 1, t.dtype).apply(t, out, seeds, float(scale))
        return out
    out = t.mul_(scale) if inplace else torch.mul(t.contiguous(), scale).to(t.dtype)
    target = out if out.is_contiguous() else out.contiguous()
    target.view(-1).index_fill_(0, cubes.unit_index(), 0.0)
    return out if target is out else out.copy_(target)


class _ScaledCubeDrop(torch.autograd.Function):
    """``x * scale`` with the cubes zeroed; its gradient the same map of the upstream gradient
    (the cubes' corners are saved, not a mask)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: Tensor, corners: Tensor, cubes: _Cubes, inplace: bool) -> Tensor:
        if inplace:
            ctx.mark_dirty(x)
        ctx.save_for_backward(scale, corners)
        ctx.cubes = dataclasses.replace(cubes, corners=corners[:0])  # the corners travel as a saved tensor
        return _scale_and_zero(x, scale, cubes, inplace)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        scale, corners = ctx.saved_tensors
        return _scale_and_zero(grad, scale, dataclasses.replace(ctx.cubes, corners=corners), False), None, None, None, None


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
    k, _, _ = law.painted_block_shape(CONTRACT, volume, block_size)  # a cube: k clamped to min(D, H, W)
    corners = (volume[0] - k + 1, volume[1] - k + 1, volume[2] - k + 1)  # valid seeds: cube corners
    per_map = corners[0] * corners[1] * corners[2]
    seeds = sample_bernoulli_positions(n * c * per_map, law.gamma(CONTRACT, p, volume, block_size), generator=generator, device=x.device)
    map_index, within = seeds // per_map, seeds % per_map
    depth, within = within // (corners[1] * corners[2]), within % (corners[1] * corners[2])
    top, left = within // corners[2], within % corners[2]
    cubes = _Cubes(((map_index * volume[0] + depth) * volume[1] + top) * volume[2] + left, (n, c, *volume), k)
    # The exact count of the cubes' union, from a one-byte mask (an eighth of the traffic of x).
    dropped = torch.zeros(x.numel(), dtype=torch.bool, device=x.device)
    dropped.index_fill_(0, cubes.unit_index(), True)
    scale = spec.kept_scale(torch.count_nonzero(dropped), x.numel())
    return _ScaledCubeDrop.apply(x, scale, cubes.corners, cubes, inplace)


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
