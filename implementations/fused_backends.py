"""The back ends of ``fused`` and ``fused-shared``, below autograd: given a 64-bit seed, each
writes ``x * scale`` with the blocks zeroed, a deterministic function of (x, seed, p,
block_size, shared). :mod:`.fused_ops` registers them as the kernels of one ``torch.library``
operator; nothing here records autograd.

* :func:`kernel_drop`: the compiled CPU kernel (:mod:`.fused_cpu`): sampling, exact counting
  and the apply pass in C.
* :func:`triton_drop`: the Triton kernels on CUDA, when Triton is installed.
* :func:`torch_drop`: pure torch, on any device (sparse seeds, windows instead of units,
  exact counts without a mask; see :mod:`.fused`). Its sampler is the Triton path's, so the two
  agree exactly for the same seed.

Output layout (every back end, and the operator's fake kernel): channels-last when ``x`` is
channels-last, NCHW-contiguous otherwise (:func:`output_format`).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from dropblock_bench import spec

from . import fused_cpu
from .fused_sampling import Blocks, sample_blocks, seed_geometry
from .records import FUSED, FUSED_SHARED

CONTRACT = FUSED.dropblock_contract
SHARED_CONTRACT = FUSED_SHARED.dropblock_contract


def output_format(x: Tensor) -> torch.memory_format:
    """The memory format of an out-of-place result for ``x``."""
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


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


def _generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def torch_drop(x: Tensor, seed: int, p: float, block_size: int, shared: bool, inplace: bool) -> Tensor:
    """The pure-torch back end (0 < p < 1, training; arguments checked by the caller)."""
    n, c, height, width = x.shape
    contract = SHARED_CONTRACT if shared else CONTRACT
    blocks = sample_blocks(contract, n if shared else n * c, height, width, block_size, p, _generator(seed, x.device), x.device)
    out = x if inplace else torch.empty_like(x, memory_format=output_format(x))
    if shared:
        dropped = paint_mask(blocks, (n, 1, height, width), x.device)
        scale = spec.normalisation_scale(SHARED_CONTRACT, dropped, p, block_size)
        # Fold the scale into the small mask; saturate rather than overflow in half precision.
        ceiling = min(torch.finfo(x.dtype).max, torch.finfo(torch.float32).max)
        multiplier = torch.where(dropped, 0.0, scale).clamp_(max=ceiling).to(x.dtype)
        return torch.mul(x, multiplier, out=out)
    torch.mul(x, spec.kept_scale(count_dropped(blocks, height, width), x.numel()), out=out)
    _zero_blocks(out, blocks)
    return out


def cpu_kernel(x: Tensor) -> fused_cpu.CpuKernel | None:
    """The compiled kernel when it can take ``x`` (a CPU tensor of a dtype it handles), else None."""
    if not x.is_cpu:
        return None
    kernel = fused_cpu.load()
    return kernel if kernel is not None and kernel.supports(x.dtype) else None


@functools.lru_cache(maxsize=512)
def _plan(shared: bool, shape: tuple[int, int, int, int], block_size: int, p: float, dtype: torch.dtype) -> fused_cpu.Plan:
    """The CPU kernel's calls for one input shape (per-channel or shared masks)."""
    n, c, height, width = shape
    geometry = seed_geometry(SHARED_CONTRACT if shared else CONTRACT, height, width, block_size, p)
    kernel = fused_cpu.load()
    assert kernel is not None  # callers checked cpu_kernel first
    return kernel.plan(geometry, n if shared else n * c, c if shared else 1, dtype)


def fresh_output(x: Tensor) -> Tensor:
    """A new NCHW-contiguous tensor like ``x``, advised onto huge pages (the kernel writes all
    of it at once; see ``CpuKernel.advise_huge_pages``)."""
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    kernel = fused_cpu.load()
    if kernel is not None:
        kernel.advise_huge_pages(out)
    return out


class SeededMask:
    """One call's mask, replayed from its seed: each :meth:`apply` runs the back end again with
    the same seed (it samples again; the back ends are deterministic given the seed)."""

    def __init__(self, back_end: Callable[..., Tensor], seed: int, p: float, block_size: int, shared: bool) -> None:
        self._back_end, self._seed, self._p, self._block_size, self._shared = back_end, seed, p, block_size, shared

    def tensors(self) -> tuple[Tensor, ...]:
        """What a backward pass must keep (for autograd's saved-tensor accounting): the seed."""
        return (torch.tensor(self._seed, dtype=torch.int64),)

    def with_tensors(self, tensors: Sequence[Tensor | None]) -> SeededMask:
        """This mask, its state taken from ``tensors`` (as :meth:`tensors` gave them)."""
        return self

    def apply(self, x: Tensor, inplace: bool = False) -> Tensor:
        """``x * scale`` with this call's blocks zeroed (written into ``x`` when ``inplace``)."""
        return self._back_end(x, self._seed, self._p, self._block_size, self._shared, inplace)


class KernelMask:
    """One call's mask on the CPU kernel, kept for replay: its seeds' flat positions (one int64
    per seed, about ``gamma`` of the seed positions) and its scale. Replaying is the kernel's
    apply pass alone, with no sampling and no counting, as cheap as :func:`kernel_drop` less
    the sampling; a backward pass replays it on the gradient."""

    def __init__(self, x: Tensor, seed: int, p: float, block_size: int, shared: bool) -> None:
        self._plan = _plan(shared, tuple(x.shape), block_size, p, x.dtype)
        self._seeds, dropped = self._plan.sample(seed)
        self._scale = spec.kept_scale_of_count(dropped * self._plan.maps_per_mask, x.numel())

    def tensors(self) -> tuple[Tensor, ...]:
        """What a backward pass must keep: the seeds' positions (int64)."""
        return (self._seeds.flat,)

    def with_tensors(self, tensors: Sequence[Tensor | None]) -> KernelMask:
        """A copy whose seeds' positions are ``tensors[0]`` (None: a copy holding none, for a
        context that keeps them through ``save_for_backward``)."""
        twin = copy.copy(self)
        flat = tensors[0] if tensors[0] is not None else self._seeds.flat[:0]
        twin._seeds = self._seeds._replace(flat=flat)
        return twin

    def apply(self, x: Tensor, inplace: bool = False) -> Tensor:
        """``x * scale`` with this call's blocks zeroed, for ``x`` of the sampled call's shape
        and dtype (any layout: as :func:`kernel_drop`). Same output as :func:`kernel_drop` with
        the same seed."""
        if not x.is_contiguous():
            out = self.apply(x.contiguous())
            return x.copy_(out) if inplace else out.contiguous(memory_format=output_format(x))
        out = x if inplace else fresh_output(x)
        self._plan.apply(x, out, self._seeds, self._scale)
        return out


def replayable_mask(x: Tensor, seed: int, p: float, block_size: int, shared: bool,
                    torch_only: bool = False) -> KernelMask | SeededMask:
    """``x``'s back end (:func:`back_end`) as a mask that can be applied again: the CPU kernel's
    keeps its seeds' positions (:class:`KernelMask`), the others their seed (:class:`SeededMask`)."""
    chosen = back_end(x, torch_only)
    if chosen is kernel_drop:
        return KernelMask(x, seed, p, block_size, shared)
    return SeededMask(chosen, seed, p, block_size, shared)


def kernel_drop(x: Tensor, seed: int, p: float, block_size: int, shared: bool, inplace: bool) -> Tensor:
    """The CPU kernel's back end (``cpu_kernel(x)`` is not None). The kernel reads
    NCHW-contiguous memory: any other layout is copied into it and the result returned in
    :func:`output_format`, or copied back into ``x`` when ``inplace``."""
    if not x.is_contiguous():
        out = kernel_drop(x.contiguous(), seed, p, block_size, shared, False)
        if inplace:
            return x.copy_(out)
        return out.contiguous(memory_format=output_format(x))
    out = x if inplace else fresh_output(x)
    _plan(shared, tuple(x.shape), block_size, p, x.dtype).drop(seed, x, out, spec.kept_scale_of_count)
    return out


@functools.cache
def triton_path() -> Callable[..., Tensor] | None:
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


def triton_drop(x: Tensor, seed: int, p: float, block_size: int, shared: bool, inplace: bool) -> Tensor:
    """The Triton back end (``triton_path()`` is not None, ``x`` on CUDA)."""
    triton_fn = triton_path()
    assert triton_fn is not None
    contract = SHARED_CONTRACT if shared else CONTRACT
    if inplace and not x.is_contiguous():
        return x.copy_(triton_fn(x, p, block_size, contract, generator=_generator(seed, x.device)))
    out = triton_fn(x, p, block_size, contract, inplace=inplace, generator=_generator(seed, x.device))
    return out if inplace else out.contiguous(memory_format=output_format(x))


def back_end(x: Tensor, torch_only: bool = False) -> Callable[..., Tensor]:
    """The back end for ``x``: the CPU kernel on the CPU (pure torch when it cannot be built or
    takes no such dtype), Triton on CUDA (pure torch without Triton), pure torch on any other
    device and whenever ``torch_only``."""
    if torch_only:
        return torch_drop
    if x.device.type == "cpu":
        return torch_drop if cpu_kernel(x) is None else kernel_drop
    if x.device.type == "cuda":
        return torch_drop if triton_path() is None else triton_drop
    return torch_drop


def backend_status() -> str:
    """Which path ``fused`` takes here, and why: the CPU kernel's status, and Triton's."""
    try:
        triton_state = "Triton installed" if triton_path() is not None else "Triton not installed (CUDA takes pure torch)"
    except ImportError as exc:  # our Triton module failed: say so rather than hide it
        triton_state = f"Triton path broken: {exc}"
    return f"CPU: {fused_cpu.status()}; CUDA: {triton_state}"
