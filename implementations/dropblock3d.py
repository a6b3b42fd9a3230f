"""DropBlock3d: DropBlock on (N, C, D, H, W) volumes, cubes instead of squares, with the paper's
law in three dimensions (the law is :mod:`dropblock_bench.families.dropblock3d`).

One contract, ``CONTRACT`` (Algorithm 1 carried to 3-D, torchvision's ``drop_block3d``:
per-channel masks, seeds where the whole cube fits, the paper's gamma with ``k**3``, batch
normalisation), two implementations:

* :func:`drop_block3d` (fast, any device): ``fused``'s sparse-seed design. Where ``fused``'s
  CPU kernel is built and takes ``x``, the kernel draws the cube corners (exact Bernoulli, as
  gaps between successes), writes each cube as a k x k square in each of the k planes it spans,
  counts their union exactly, and its apply pass writes ``x * scale`` with the squares zeroed:
  ``x`` is read once. Elsewhere (a GPU, no compiler) the same law in pure torch: corners drawn
  as gaps, their units filled into a one-byte mask whose exact count gives the scale, then
  ``x * scale`` and a scattered fill. Backward saves the seeds or corners, not a mask.
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
from .fused import draw_seed
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
class _TorchCubes:
    """One call's cubes for the pure-torch path: ``corners``, the flat index of each cube's
    first unit (int64), on an (N, C, D, H, W) input of ``shape``, side ``k``, and the scale
    (a float32 tensor: no host sync on a GPU). ``units``, every cube's units' flat indices,
    is kept for the forward call that built them and left out of what backward saves."""

    corners: Tensor
    shape: tuple[int, int, int, int, int]
    k: int
    scale: Tensor
    units: Tensor | None = None

    def tensors(self) -> tuple[Tensor, ...]:
        return (self.corners, self.scale)

    def with_tensors(self, tensors: tuple[Tensor, ...]) -> _TorchCubes:
        return dataclasses.replace(self, corners=tensors[0], scale=tensors[1], units=None)

    def apply(self, t: Tensor, inplace: bool) -> Tensor:
        """``t * scale`` and a scattered fill of the cubes' units."""
        units = self.units if self.units is not None else _unit_index(self.corners, self.shape, self.k)
        out = t.mul_(self.scale) if inplace else torch.mul(t, self.scale).to(t.dtype)  # t's layout kept
        target = out if out.is_contiguous() else out.contiguous()
        target.view(-1).index_fill_(0, units, 0.0)
        return out if target is out else out.copy_(target)


def _unit_index(corners: Tensor, shape: tuple[int, int, int, int, int], k: int) -> Tensor:
    """The flat index of every unit of every cube with first units ``corners`` (``k**3`` per
    cube; overlaps repeat)."""
    _, _, _, height, width = shape
    steps = torch.arange(k, device=corners.device)
    offsets = (steps[:, None, None] * (height * width) + steps[None, :, None] * width + steps[None, None, :]).view(-1)
    return (corners[:, None] + offsets).view(-1)


@dataclasses.dataclass(frozen=True)
class _KernelCubes:
    """One call's cubes for ``fused``'s CPU kernel: each cube as a k x k square in the k planes
    it spans (``seeds``, the kernel's 2-D seeds over the N * C * D planes, drawn and counted by
    :meth:`~.fused_cpu.CpuKernel.cubes`), and the scale (a float)."""

    seeds: fused_cpu.Seeds
    geometry: fused_cpu.SeedGeometry
    scale: float

    def tensors(self) -> tuple[Tensor, ...]:
        return (self.seeds.flat,)

    def with_tensors(self, tensors: tuple[Tensor, ...]) -> _KernelCubes:
        return dataclasses.replace(self, seeds=self.seeds._replace(flat=tensors[0]))

    def apply(self, t: Tensor, inplace: bool) -> Tensor:
        """The kernel's apply pass: ``t * scale`` with the squares zeroed, ``t`` read once."""
        if not t.is_contiguous():
            out = self.apply(t.contiguous(), False)
            layout = torch.channels_last_3d if t.is_contiguous(memory_format=torch.channels_last_3d) else torch.contiguous_format
            return t.copy_(out) if inplace else out.contiguous(memory_format=layout)
        kernel = fused_cpu.load()
        assert kernel is not None  # chosen only where the kernel takes t
        out = t if inplace else fused_backends.fresh_output(t)
        kernel.plan(self.geometry, self.seeds.masks, 1, t.dtype).apply(t, out, self.seeds, self.scale)
        return out


_Cubes = _TorchCubes | _KernelCubes


class _ScaledCubeDrop(torch.autograd.Function):
    """``x * scale`` with the cubes zeroed; its gradient the same map of the upstream gradient
    (what backward keeps is the cubes' corners or seeds, through ``save_for_backward``)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, cubes: _Cubes, inplace: bool) -> Tensor:
        if inplace:
            ctx.mark_dirty(x)
        ctx.save_for_backward(*cubes.tensors())
        ctx.cubes = cubes.with_tensors(cubes.tensors())  # without what backward need not keep
        return cubes.apply(x, inplace)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        return ctx.cubes.with_tensors(ctx.saved_tensors).apply(grad, False), None, None


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
    cubes = _kernel_cubes(x, p, block_size, generator) if fused_backends.cpu_kernel(x) is not None else None
    return _ScaledCubeDrop.apply(x, cubes or _torch_cubes(x, p, block_size, generator), inplace)


def _kernel_cubes(x: Tensor, p: float, block_size: int, generator: torch.Generator | None) -> _KernelCubes:
    """The cubes drawn and counted by the CPU kernel from one 64-bit seed of ``generator``."""
    n, c, depth, height, width = x.shape
    k, _, _ = law.painted_block_shape(CONTRACT, (depth, height, width), block_size)  # k clamped to min(D, H, W)
    kernel = fused_cpu.load()
    assert kernel is not None
    seed = int(draw_seed(generator))
    seeds, dropped = kernel.cubes(seed, n * c, (depth, height, width), k, law.gamma(CONTRACT, p, (depth, height, width), block_size))
    geometry = fused_cpu.SeedGeometry(height, width, k, 0, height - k + 1, 0, width - k + 1, 0.0)
    return _KernelCubes(seeds, geometry, spec.kept_scale_of_count(dropped, x.numel()))


def _torch_cubes(x: Tensor, p: float, block_size: int, generator: torch.Generator | None) -> _TorchCubes:
    """The cubes as exact Bernoulli corners (gaps between successes) on ``x``'s device, and
    the scale from a one-byte mask's exact count (an eighth of the traffic of float32 ``x``)."""
    n, c, *spatial = x.shape
    volume = (spatial[0], spatial[1], spatial[2])
    k, _, _ = law.painted_block_shape(CONTRACT, volume, block_size)  # a cube: k clamped to min(D, H, W)
    corners = (volume[0] - k + 1, volume[1] - k + 1, volume[2] - k + 1)  # valid seeds: cube corners
    per_map = corners[0] * corners[1] * corners[2]
    seeds = sample_bernoulli_positions(n * c * per_map, law.gamma(CONTRACT, p, volume, block_size), generator=generator, device=x.device)
    map_index, within = seeds // per_map, seeds % per_map
    depth, within = within // (corners[1] * corners[2]), within % (corners[1] * corners[2])
    top, left = within // corners[2], within % corners[2]
    first_units = ((map_index * volume[0] + depth) * volume[1] + top) * volume[2] + left
    shape = (n, c, *volume)
    units = _unit_index(first_units, shape, k)  # built once: the count's mask and the forward's fill
    dropped = torch.zeros(x.numel(), dtype=torch.bool, device=x.device)
    dropped.index_fill_(0, units, True)
    return _TorchCubes(first_units, shape, k, spec.kept_scale(torch.count_nonzero(dropped), x.numel()), units)


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
