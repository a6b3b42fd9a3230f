"""``fused`` and ``fused-shared``: DropBlock written for speed, with exactly the paper's law.

Where the time goes in a textbook DropBlock is dense work on full-size float tensors: a
uniform draw per position, a ``max_pool2d`` over the whole map, a float mask, a float sum.
Three back ends avoid all of it, with the same law:

* **CPU kernel** (:mod:`.fused_cpu`, C compiled on first use): CPU tensors of float32,
  float64, float16 or bfloat16 (other layouts are made contiguous first). Sampling, exact
  counting and the apply pass run in C with OpenMP and no temporaries; backward saves the seeds
  (one int64 each) and replays them.
* **Triton** (:mod:`.fused_triton`) on CUDA devices when Triton is installed (mask painting
  fused with the apply pass).
* **Pure torch** (this module) for everything else, and as the CPU fallback when no C
  compiler is found (``fused_cpu.status()`` says which CPU path is in use):

  - *Sparse seeds.* Seeds are iid Bernoulli(gamma) over the seed positions of every map, taken
    in one flat sequence. The gaps between successive seeds of such a sequence are iid
    Geometric(gamma), so drawing gaps and summing them yields *exactly* the Bernoulli seed set
    at the cost of the expected number of seeds, not one draw per position.
  - *Windows, not units.* Blocks are grouped by their first column; each group is one
    ``index_fill_`` on an overlapping strided view whose elements are k x k windows: one index
    per block instead of ``k**2``, and no full-size mask.
  - *Exact counts without a mask.* ``k**2`` for each map holding one seed, and for maps holding
    several the union of their blocks' row runs, counted after a sort.
  - *One pass over x.* ``fused`` computes ``x * scale`` and zeroes the blocks in place;
    backward recomputes the blocks from the saved seeds (three int64 per seed, not a mask).
    ``fused-shared`` folds the scale into its small (N, 1, H, W) mask and multiplies once.

The contracts (paper, and paper with a shared mask) are declared in :mod:`.records`;
``dbench verify`` checks this module against them.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

import torch
from torch import Tensor

from dropblock_bench import spec

from . import fused_cpu
from ._common import DropBlock2dModule, check_arguments, output_without_sampling
from .fused_sampling import Blocks, sample_bernoulli_positions, sample_blocks, seed_geometry
from .records import FUSED, FUSED_SHARED

CONTRACT = FUSED.contract
SHARED_CONTRACT = FUSED_SHARED.contract

__all__ = [
    "CONTRACT",
    "SHARED_CONTRACT",
    "DropBlock2d",
    "DropBlock2dShared",
    "drop_block2d",
    "drop_block2d_shared",
    "fill_blocks",
    "sample_bernoulli_positions",
    "sample_blocks",
]

def fill_blocks(rows_view: Tensor, first_row: Tensor, left: Tensor, size: int, value: float | bool) -> None:
    """Set every block to ``value`` in a contiguous (maps * H, W) tensor, in place.

    Blocks are grouped by their first column; for each group an overlapping strided view whose
    element ``r`` is the ``size x size`` window with top-left corner (r, column) takes one
    ``index_fill_``: one index per block, ``size**2`` units written per index.
    """
    if first_row.numel() == 0:
        return
    total_rows, width = rows_view.shape
    order = torch.argsort(left, stable=True)
    columns, counts = torch.unique_consecutive(left[order], return_counts=True)
    for column, group in zip(columns.tolist(), first_row[order].split(counts.tolist())):
        windows = rows_view.as_strided(
            (total_rows - size + 1, size, size), (width, width, 1), rows_view.storage_offset() + column
        )
        windows.index_fill_(0, group, value)


def _union_of_runs(first_row: Tensor, left: Tensor, size: int, width: int) -> Tensor:
    """Units covered by blocks, counted row by row without painting: each block is ``size``
    runs of ``size`` units; sorted by start within a row, a run adds ``min(size, start -
    previous start)`` units (runs have equal length, so the previous run reaches furthest)."""
    rows = first_row[:, None] + torch.arange(size, device=first_row.device)
    starts, _ = torch.sort((rows * width + left[:, None]).reshape(-1))
    row = starts // width
    same_row = torch.diff(row, prepend=row[:1] - 1) == 0
    gap = torch.diff(starts, prepend=starts[:1])
    return torch.where(same_row, gap.clamp(max=size), torch.full_like(gap, size)).sum()


def count_dropped(blocks: Blocks, height: int, width: int) -> Tensor:
    """Exact number of dropped units (an int64 tensor), without a full-size mask.

    A map holding one seed drops exactly ``size**2`` units; the blocks of maps holding several
    (which may overlap) are counted as unions of row runs.
    """
    device = blocks.map_index.device
    if blocks.map_index.numel() == 0:
        return torch.zeros((), dtype=torch.int64, device=device)
    _, per_map = torch.unique_consecutive(blocks.map_index, return_counts=True)
    lonely = per_map == 1
    count = torch.count_nonzero(lonely) * blocks.size**2
    if bool(lonely.all()):
        return count
    crowded = torch.repeat_interleave(~lonely, per_map)  # seeds of maps with several seeds
    first_row = blocks.first_row(height)[crowded]
    return count + _union_of_runs(first_row, blocks.left[crowded], blocks.size, width)


def paint_mask(blocks: Blocks, shape: tuple[int, int, int, int], device: torch.device) -> Tensor:
    """A bool drop mask of ``shape`` (maps laid out along N and C) with every block set."""
    n, c, height, width = shape
    mask = torch.zeros(n * c * height, width, dtype=torch.bool, device=device)
    fill_blocks(mask, blocks.first_row(height), blocks.left, blocks.size, True)
    return mask.view(shape)


def _zero_blocks(tensor: Tensor, blocks: Blocks) -> None:
    """Zero the blocks of an (N, C, H, W) tensor in place, whatever its memory layout."""
    n, c, height, width = tensor.shape
    if tensor.is_contiguous():
        fill_blocks(tensor.view(n * c * height, width), blocks.first_row(height), blocks.left, blocks.size, 0.0)
        return
    tensor.masked_fill_(paint_mask(blocks, (n, c, height, width), tensor.device), 0.0)


class _ScaleAndDropBlocks(torch.autograd.Function):
    """``out = x * scale`` with the blocks zeroed; backward recomputes the blocks from the seeds
    (a few int64 per seed are saved, not a mask)."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: Tensor, map_index: Tensor, top: Tensor, left: Tensor, size: int, inplace: bool) -> Tensor:
        out = x.mul_(scale) if inplace else torch.mul(x, scale)
        _zero_blocks(out, Blocks(map_index, top, left, size))
        if inplace:
            ctx.mark_dirty(x)
        ctx.save_for_backward(scale, map_index, top, left)
        ctx.size = size
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        scale, map_index, top, left = ctx.saved_tensors
        grad_input = torch.mul(grad, scale)
        _zero_blocks(grad_input, Blocks(map_index, top, left, ctx.size))
        return grad_input, None, None, None, None, None, None


def _cpu_kernel(x: Tensor) -> fused_cpu.CpuKernel | None:
    """The compiled kernel when it can take ``x`` (a CPU tensor of a dtype it handles), else None."""
    if not x.is_cpu:
        return None
    kernel = fused_cpu.load()
    return kernel if kernel is not None and kernel.supports(x.dtype) else None


_seed_scratch = threading.local()


def _draw_seed(generator: torch.Generator | None) -> int:
    """63 random bits from ``generator`` (or torch's default): the kernel's whole randomness."""
    scratch = getattr(_seed_scratch, "tensor", None)
    if scratch is None:
        scratch = _seed_scratch.tensor = torch.empty((), dtype=torch.int64)
    return int(scratch.random_(generator=generator))


@functools.lru_cache(maxsize=512)
def _plan(shared: bool, shape: tuple[int, int, int, int], block_size: int, p: float, dtype: torch.dtype) -> fused_cpu.Plan:
    """The CPU kernel's calls for one input shape (per-channel or shared masks)."""
    n, c, height, width = shape
    contract = SHARED_CONTRACT if shared else CONTRACT
    geometry = seed_geometry(contract, height, width, block_size, p)
    kernel = fused_cpu.load()
    assert kernel is not None  # callers checked _cpu_kernel first
    return kernel.plan(geometry, n if shared else n * c, c if shared else 1, dtype)


class _KernelDropBlock(torch.autograd.Function):
    """The CPU kernel's apply pass; backward replays it on the gradient from the saved seeds."""

    @staticmethod
    def forward(ctx, x: Tensor, plan: fused_cpu.Plan, seeds: fused_cpu.Seeds, scale: float, inplace: bool) -> Tensor:
        out = _kernel_apply(x, plan, seeds, scale, inplace)
        if inplace:
            ctx.mark_dirty(x)
        ctx.save_for_backward(seeds.flat)
        ctx.plan, ctx.masks, ctx.per_mask, ctx.scale = plan, seeds.masks, seeds.per_mask, scale
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        (flat,) = ctx.saved_tensors
        grad_input = _kernel_apply(grad.contiguous(), ctx.plan, fused_cpu.Seeds(flat, ctx.masks, ctx.per_mask), ctx.scale, False)
        return grad_input, None, None, None, None


def _output(x: Tensor, inplace: bool) -> Tensor:
    """Where the kernel writes: ``x`` itself, or a new NCHW-contiguous tensor like it, advised
    onto huge pages (the kernel writes all of it at once; see ``CpuKernel.advise_huge_pages``)."""
    if inplace:
        return x
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    kernel = fused_cpu.load()
    if kernel is not None:
        kernel.advise_huge_pages(out)
    return out


def _kernel_apply(x: Tensor, plan: fused_cpu.Plan, seeds: fused_cpu.Seeds, scale: float, inplace: bool) -> Tensor:
    out = _output(x, inplace)
    plan.apply(x, out, seeds, scale)
    return out


def _drop_with_kernel(x: Tensor, p: float, block_size: int, shared: bool, inplace: bool,
                      generator: torch.Generator | None) -> Tensor:
    """``fused`` (per-channel masks) or ``fused-shared`` (one mask per sample) on the CPU kernel.

    The kernel reads NCHW-contiguous memory: any other layout is copied into it and the result
    returned in ``x``'s layout (channels-last stays channels-last), or copied back into ``x``
    when ``inplace``.
    """
    if not x.is_contiguous():
        out = _drop_with_kernel(x.contiguous(), p, block_size, shared, False, generator)
        if inplace:
            return x.copy_(out)
        return out.contiguous(memory_format=torch.channels_last) if x.is_contiguous(memory_format=torch.channels_last) else out
    plan = _plan(shared, tuple(x.shape), block_size, p, x.dtype)
    if torch.is_grad_enabled() and x.requires_grad:
        seeds, dropped = plan.sample(_draw_seed(generator))
        scale = spec.kept_scale_of_count(dropped * plan.maps_per_mask, x.numel())
        return _KernelDropBlock.apply(x, plan, seeds, scale, inplace)
    out = _output(x, inplace)
    plan.drop(_draw_seed(generator), x, out, spec.kept_scale_of_count)
    return out


@functools.cache
def _triton_path() -> Callable[..., Tensor] | None:
    """The Triton implementation (CUDA inputs only), or None when Triton is not installed. Any
    other import failure inside our Triton module is a bug and raises: a CUDA input must never
    fall back to the slow path silently."""
    try:
        import triton  # noqa: F401 - only asks whether it is installed
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "triton":
            return None
        raise
    from .fused_triton import drop_block2d_triton

    return drop_block2d_triton


def backend_status() -> str:
    """Which path ``fused`` takes here, and why: the CPU kernel's status, and Triton's."""
    try:
        triton_state = "Triton installed" if _triton_path() is not None else "Triton not installed (CUDA takes pure torch)"
    except ImportError as exc:  # our Triton module failed: say so rather than hide it
        triton_state = f"Triton path broken: {exc}"
    return f"CPU: {fused_cpu.status()}; CUDA: {triton_state}"


def _dispatch(x: Tensor, p: float, block_size: int, *, shared: bool, training: bool, inplace: bool,
              generator: torch.Generator | None, torch_only: bool = False) -> Tensor:
    """Check the arguments, settle the trivial cases, then take the first back end that can run
    ``x``: Triton on CUDA, the CPU kernel, else pure torch (``torch_only``: pure torch always)."""
    check_arguments(x, p, block_size)
    trivial = output_without_sampling(x, p, training=training, inplace=inplace)
    if trivial is not None:
        return trivial
    if not torch_only:
        triton_path = _triton_path() if x.is_cuda else None
        if triton_path is not None:
            return triton_path(x, p, block_size, SHARED_CONTRACT if shared else CONTRACT, inplace=inplace, generator=generator)
        if _cpu_kernel(x) is not None:
            return _drop_with_kernel(x, p, block_size, shared, inplace, generator)
    torch_path = _drop_block2d_shared_torch if shared else _drop_block2d_torch
    return torch_path(x, p, block_size, inplace, generator)


def drop_block2d(
    x: Tensor,
    p: float,
    block_size: int,
    *,
    training: bool = True,
    inplace: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fast DropBlock with the paper's contract (per-channel masks, valid seeds, paper gamma,
    batch normalisation): statistically identical to ``paper``.

    Args:
        x (Tensor[N, C, H, W]): floating-point input.
        p (float): drop probability in [0, 1].
        block_size (int): side of the dropped squares; clamped to ``min(H, W)``.
        training (bool): ``False`` returns ``x`` unchanged. Default ``True``.
        inplace (bool): write into ``x``. Default ``False``.
        generator (torch.Generator, optional): source of randomness, on ``x``'s device.

    Returns:
        Tensor[N, C, H, W] with ``x``'s dtype and device. Backward saves the seeds, not a
        mask: one int64 per seed with the CPU kernel, three on the pure-torch path.
    """
    return _dispatch(x, p, block_size, shared=False, training=training, inplace=inplace, generator=generator)


def _drop_block2d_torch(x: Tensor, p: float, block_size: int, inplace: bool, generator: torch.Generator | None) -> Tensor:
    """The pure-torch path of :func:`drop_block2d` (arguments checked, trivial cases handled);
    its sampler is the Triton path's, so the two agree exactly for the same generator."""
    n, c, height, width = x.shape
    blocks = sample_blocks(CONTRACT, n * c, height, width, block_size, p, generator, x.device)
    scale = spec.kept_scale(count_dropped(blocks, height, width), x.numel())
    return _ScaleAndDropBlocks.apply(x, scale, blocks.map_index, blocks.top, blocks.left, blocks.size, inplace)


def drop_block2d_shared(
    x: Tensor,
    p: float,
    block_size: int,
    *,
    training: bool = True,
    inplace: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fast DropBlock with one mask per sample shared by all channels (otherwise the paper's
    contract). Arguments and result as :func:`drop_block2d`; backward saves the seeds (CPU
    kernel: one int64 each) or, on the pure-torch path, the small (N, 1, H, W) multiplier.
    """
    return _dispatch(x, p, block_size, shared=True, training=training, inplace=inplace, generator=generator)


def _drop_block2d_shared_torch(x: Tensor, p: float, block_size: int, inplace: bool, generator: torch.Generator | None) -> Tensor:
    """The pure-torch path of :func:`drop_block2d_shared` (as :func:`_drop_block2d_torch`)."""
    n, _, height, width = x.shape
    blocks = sample_blocks(SHARED_CONTRACT, n, height, width, block_size, p, generator, x.device)
    dropped = paint_mask(blocks, (n, 1, height, width), x.device)
    scale = spec.normalisation_scale(SHARED_CONTRACT, dropped, p, block_size)
    # Fold the scale into the small mask; saturate rather than overflow in half precision.
    ceiling = min(torch.finfo(x.dtype).max, torch.finfo(torch.float32).max)
    multiplier = torch.where(dropped, 0.0, scale).clamp_(max=ceiling).to(x.dtype)
    return x.mul_(multiplier) if inplace else x * multiplier


class DropBlock2d(DropBlock2dModule):
    """See :func:`drop_block2d`."""

    function = staticmethod(drop_block2d)


class DropBlock2dShared(DropBlock2dModule):
    """See :func:`drop_block2d_shared`."""

    function = staticmethod(drop_block2d_shared)
