"""Triton kernels of ``fused`` and ``fused-shared`` for CUDA devices.

Seeds come from the same exact sparse sampler as the CPU path
(:func:`.fused_sampling.sample_blocks`) and are scattered into a uint8 grid of block corners, one
byte per seed position. Then two passes:

1. **count**: every unit checks the ``k x k`` corners that could cover it; per-program sums
   of dropped units go into one int64 counter (atomic add);
2. **apply**: the same check, fused with ``out = x * scale`` (0 where dropped), the scale
   being :func:`dropblock_bench.spec.kept_scale` of the counter, computed on the device so
   nothing waits for the host: x is read once and the output written once.

Backward runs pass 2 on the incoming gradient, recomputing the mask from the saved grid
(1 byte per seed position, no float mask). Shared masks use the same kernels with one map per
sample (``map_stride = C * H * W``).

Expected performance: pass 2 is a streaming kernel (one read of x, one write of out; the
seed grid is ~1/4 of x's bytes in fp32 and stays in cache), so it should reach >= 80 % of the
device's copy bandwidth; check with ``dbench run --device cuda --impl fused`` and compare the
``gbps`` column with the floor's (``x * c``), whose ratio ``floor_ratio`` should be close to 1.

Tests run these kernels on CPU tensors with Triton's interpreter (``TRITON_INTERPRET=1``).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from dropblock_bench import spec

from .fused_sampling import Blocks, sample_blocks

BLOCK = 1024


@triton.jit
def _dropped(seed_ptr, offsets, in_range, map_stride, height, width, seed_h, seed_w, SIZE: tl.constexpr):
    """Whether each unit lies in the block of some corner: corners (a, b) with a in [i-k+1, i]
    and b in [j-k+1, j] inside the seed grid."""
    plane = height * width
    map_id = offsets // map_stride
    within = offsets % plane
    row = within // width
    col = within % width
    hit = tl.zeros(offsets.shape, dtype=tl.int32)
    for dy in tl.static_range(SIZE):
        for dx in tl.static_range(SIZE):
            top = row - dy
            left = col - dx
            ok = in_range & (top >= 0) & (top < seed_h) & (left >= 0) & (left < seed_w)
            seed = tl.load(seed_ptr + map_id * seed_h * seed_w + top * seed_w + left, mask=ok, other=0)
            hit = hit | (seed != 0).to(tl.int32)
    return hit != 0


@triton.jit
def _count_kernel(seed_ptr, count_ptr, total, map_stride, height, width, seed_h, seed_w, SIZE: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_range = offsets < total
    dropped = _dropped(seed_ptr, offsets, in_range, map_stride, height, width, seed_h, seed_w, SIZE)
    tl.atomic_add(count_ptr, tl.sum((dropped & in_range).to(tl.int64), axis=0))


@triton.jit
def _apply_kernel(
    x_ptr, out_ptr, seed_ptr, scale_ptr, total, map_stride, height, width, seed_h, seed_w, SIZE: tl.constexpr, BLOCK: tl.constexpr
):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_range = offsets < total
    dropped = _dropped(seed_ptr, offsets, in_range, map_stride, height, width, seed_h, seed_w, SIZE)
    scale = tl.load(scale_ptr)
    x = tl.load(x_ptr + offsets, mask=in_range, other=0.0)
    out = tl.where(dropped, 0.0, x.to(tl.float32) * scale)
    tl.store(out_ptr + offsets, out.to(out_ptr.dtype.element_ty), mask=in_range)


def _launch_apply(source: Tensor, out: Tensor, grid: Tensor, scale: Tensor, geometry: tuple[int, ...]) -> None:
    total, map_stride, height, width, seed_h, seed_w, size = geometry
    _apply_kernel[(triton.cdiv(total, BLOCK),)](
        source, out, grid, scale, total, map_stride, height, width, seed_h, seed_w, SIZE=size, BLOCK=BLOCK
    )


class _TritonDropBlock(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, grid: Tensor, scale: Tensor, geometry: tuple[int, ...], inplace: bool) -> Tensor:
        out = x if inplace else torch.empty_like(x, memory_format=torch.contiguous_format)
        _launch_apply(x, out, grid, scale, geometry)
        if inplace:
            ctx.mark_dirty(x)
        ctx.save_for_backward(grid, scale)
        ctx.geometry = geometry
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        grid, scale = ctx.saved_tensors
        grad = grad.contiguous()
        grad_input = torch.empty_like(grad)
        _launch_apply(grad, grad_input, grid, scale, ctx.geometry)
        return grad_input, None, None, None, None


def drop_block2d_triton(
    x: Tensor, p: float, block_size: int, contract: spec.Contract, *, inplace: bool = False, generator: torch.Generator | None = None
) -> Tensor:
    """DropBlock with a valid-seed contract (per-channel or shared, batch normalisation) through
    the Triton kernels. Arguments are assumed checked and non-trivial (0 < p < 1, training)."""
    if not x.is_contiguous():
        if inplace:
            raise ValueError("the Triton path needs a contiguous (N, C, H, W) input for inplace=True")
        x = x.contiguous()
    n, c, height, width = x.shape
    shared = contract.mask is spec.MaskSharing.SHARED
    maps = n if shared else n * c
    blocks: Blocks = sample_blocks(contract, maps, height, width, block_size, p, generator, x.device)
    k = blocks.size
    seed_h, seed_w = len(spec.seed_rows(contract, height, k)), len(spec.seed_rows(contract, width, k))
    grid = torch.zeros(maps * seed_h * seed_w, dtype=torch.uint8, device=x.device)
    grid[blocks.map_index * (seed_h * seed_w) + blocks.top * seed_w + blocks.left] = 1
    geometry = (x.numel(), c * height * width if shared else height * width, height, width, seed_h, seed_w, k)
    count = torch.zeros(1, dtype=torch.int64, device=x.device)
    total = x.numel()
    _count_kernel[(triton.cdiv(total, BLOCK),)](grid, count, *geometry[:6], SIZE=k, BLOCK=BLOCK)
    scale = spec.kept_scale(count, total)  # on the device: nothing waits for the host
    return _TritonDropBlock.apply(x, grid, scale, geometry, inplace)
