"""Cutout: square holes cut out of input images (DeVries and Taylor, 2017).

Three implementations of one contract, ``CONTRACT`` (the reference code's: centres anywhere,
patches of side ``2 * (length // 2)`` clipped at the border, holes shared by an image's channels,
no rescale; the law is :mod:`dropblock_bench.families.cutout`):

* :func:`cutout` (fast): a whole batch at once. On the CPU, where ``fused``'s kernel is built,
  its apply pass cuts the holes (a hole is its block, clipped at the border, the same in each
  channel of an image): ``x`` read once (1.46x the floor op at 64 x 3 x 224 x 224 with one hole
  of 112 in the reference run, a copy taking 1.0x: each hole is written twice). Elsewhere (a GPU, a gradient
  to record) the holes' row and column spans are compared with ``arange(H)`` and ``arange(W)``
  and combined by one batched outer product into an (N, 1, H, W) mask, applied by one
  ``where``. Either way cut pixels are exact zeros.
* :func:`cutout_blog`: the Cutout blog's loop, image by image and hole by hole, a float mask of
  ones zeroed by slices and multiplied in.
* :func:`cutout_reference`: the contract's reference sampler
  (:func:`~dropblock_bench.families.cutout.reference_cutout_mask`) applied with a masked fill.

Each takes ``x`` of shape (N, C, H, W) or one image (C, H, W), floating point, and returns a
tensor of its shape, dtype and device. Cutout is a training-time augmentation:
``training=False`` returns ``x``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dropblock_bench.families.cutout import patch_side, reference_cutout_mask
from dropblock_bench.spec import check_positive_int

from . import fused_backends, fused_cpu
from .family_records import CUTOUT_CONTRACT

__all__ = ["CONTRACT", "Cutout", "cutout", "cutout_blog", "cutout_reference"]

CONTRACT = CUTOUT_CONTRACT
"""Centres anywhere, clipped patches, holes shared by channels, no rescale."""


def _as_batch(x: Tensor, n_holes: int, length: int) -> Tensor:
    """``x`` as (N, C, H, W) (one image gets a batch dimension); arguments checked."""
    if not isinstance(x, Tensor):
        raise ValueError(f"input must be a torch.Tensor, got {type(x).__name__}")  # noqa: TRY004 - one error type for every bad argument
    if x.dim() not in (3, 4):
        raise ValueError(f"input must be (N, C, H, W) or one image (C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"input must be a floating-point tensor, got {x.dtype}")
    check_positive_int("n_holes", n_holes)
    check_positive_int("length", length)
    return x if x.dim() == 4 else x.unsqueeze(0)


def _kernel_cutout(batch: Tensor, ys: Tensor, xs: Tensor, half: int, inplace: bool) -> Tensor | None:
    """The cut batch from ``fused``'s CPU kernel, or None where it does not apply (not a CPU
    tensor of a dtype it takes, not contiguous, recording a gradient, or no hole at all).

    A hole is the kernel's block: side ``2 * half``, corner ``(y - half, x - half)``, clipped
    to the map; each of an image's C channel maps takes the image's holes (centres ``ys``,
    ``xs`` of shape (N, holes)) as its seeds. The apply pass writes ``x * 1`` with the holes
    exact zeros: ``x`` read once."""
    kernel = fused_backends.cpu_kernel(batch)
    if kernel is None or half == 0 or not batch.is_contiguous() or (batch.requires_grad and torch.is_grad_enabled()):
        return None
    n, channels, height, width = batch.shape
    maps = torch.arange(n * channels, device=batch.device).view(n, channels, 1)
    # Every channel's map takes its image's holes, grouped by map as the kernel takes seeds:
    # maps are then scaled a few at a time and their holes zeroed while in cache.
    flat = ((maps * height + ys[:, None, :]) * width + xs[:, None, :]).reshape(-1)
    geometry = fused_cpu.SeedGeometry(height, width, 2 * half, -half, height, -half, width, 0.0)
    out = batch if inplace else fused_backends.fresh_output(batch)
    kernel.plan(geometry, n * channels, 1, batch.dtype).apply(batch, out, fused_cpu.Seeds(flat, n * channels, height * width), 1.0)
    return out


def _centres(n: int, n_holes: int, size: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """(n, n_holes) centres uniform on ``range(size)``, drawn on the generator's device."""
    where = generator.device if generator is not None else device
    return torch.randint(0, size, (n, n_holes), generator=generator, device=where).to(device)


def cutout(x: Tensor, n_holes: int = 1, length: int = 16, *, training: bool = True, inplace: bool = False,
           generator: torch.Generator | None = None) -> Tensor:  # fmt: skip
    """Cut ``n_holes`` squares of side ``2 * (length // 2)`` out of every image, centres uniform
    over the image, clipped at the border, the same for all channels of an image.

    Args:
        x (Tensor[N, C, H, W] or Tensor[C, H, W]): images, floating point.
        n_holes (int): holes per image (they may overlap). Default 1.
        length (int): the hole's nominal side. Default 16.
        training (bool): ``False`` returns ``x``. Default ``True``.
        inplace (bool): write into ``x``. Default ``False``.
        generator (torch.Generator, optional): source of the centres (rows drawn before columns).

    Returns:
        Tensor of ``x``'s shape, dtype and device.
    """
    batch = _as_batch(x, n_holes, length)
    if not training or batch.numel() == 0:
        return x
    n, _, height, width = batch.shape
    half = patch_side(length) // 2
    ys = _centres(n, n_holes, height, generator, x.device)[..., None]  # (N, holes, 1)
    xs = _centres(n, n_holes, width, generator, x.device)[..., None]
    out = _kernel_cutout(batch, ys[..., 0], xs[..., 0], half, inplace)
    if out is None:
        rows = torch.arange(height, device=x.device)
        cols = torch.arange(width, device=x.device)
        in_rows = ((rows >= ys - half) & (rows < ys + half)).to(batch.dtype)  # (N, holes, H), 1 inside a hole
        in_cols = ((cols >= xs - half) & (cols < xs + half)).to(batch.dtype)  # (N, holes, W)
        # Holes covering each pixel: one batched outer product, exact in every float dtype
        # (small integers), the only (N, H, W)-sized pass before x is read.
        covered = torch.bmm(in_rows.transpose(1, 2), in_cols)[:, None] > 0  # (N, 1, H, W)
        out = batch.masked_fill_(covered, 0.0) if inplace else torch.where(covered, 0.0, batch)
    return out if x.dim() == 4 else out[0]


def cutout_blog(x: Tensor, n_holes: int = 1, length: int = 16, *, training: bool = True,
                generator: torch.Generator | None = None) -> Tensor:  # fmt: skip
    """The Cutout blog's loop: for each image a float mask of ones; for each hole a centre
    ``(y, x)`` drawn on ``range(H)`` and ``range(W)``, rows ``clip(y - L // 2)`` up to
    ``clip(y + L // 2)`` and the same columns zeroed; the image multiplied by its mask."""
    batch = _as_batch(x, n_holes, length)
    if not training:
        return x
    n, _, height, width = batch.shape
    where = generator.device if generator is not None else torch.device("cpu")
    out = torch.empty_like(batch)
    for index in range(n):
        mask = torch.ones(height, width, dtype=batch.dtype, device=batch.device)
        for _ in range(n_holes):
            y = int(torch.randint(0, height, (), generator=generator, device=where))
            x_centre = int(torch.randint(0, width, (), generator=generator, device=where))
            y1, y2 = max(y - length // 2, 0), min(y + length // 2, height)
            x1, x2 = max(x_centre - length // 2, 0), min(x_centre + length // 2, width)
            mask[y1:y2, x1:x2] = 0.0
        out[index] = batch[index] * mask
    return out if x.dim() == 4 else out[0]


def cutout_reference(x: Tensor, n_holes: int = 1, length: int = 16, *, training: bool = True,
                     generator: torch.Generator | None = None) -> Tensor:  # fmt: skip
    """The contract's reference sampler, applied: :func:`~dropblock_bench.families.cutout.reference_cutout_mask`
    (CPU) and a masked fill."""
    batch = _as_batch(x, n_holes, length)
    if not training:
        return x
    shape = (batch.shape[0], batch.shape[1], batch.shape[2], batch.shape[3])
    cut = reference_cutout_mask(CONTRACT, shape, n_holes, length, generator=generator).to(batch.device)
    out = batch.masked_fill(cut, 0.0)
    return out if x.dim() == 4 else out[0]


class Cutout(nn.Module):
    """See :func:`cutout`.

    Args:
        n_holes (int): holes per image. Default 1.
        length (int): the hole's nominal side. Default 16.
        inplace (bool): write into the input. Default ``False``.
    """

    def __init__(self, n_holes: int = 1, length: int = 16, inplace: bool = False) -> None:
        super().__init__()
        check_positive_int("n_holes", n_holes)
        check_positive_int("length", length)
        self.n_holes, self.length, self.inplace = n_holes, length, inplace

    def forward(self, input: Tensor) -> Tensor:
        """input (Tensor[N, C, H, W] or Tensor[C, H, W]) -> Tensor of the same shape, dtype and device."""
        return cutout(input, self.n_holes, self.length, training=self.training, inplace=self.inplace)

    def extra_repr(self) -> str:
        return f"n_holes={self.n_holes}, length={self.length}, inplace={self.inplace}"
