"""``fused`` and ``fused-shared``: DropBlock written for speed, with exactly the paper's law.

Where the time goes in a textbook DropBlock is dense work on full-size float tensors: a
uniform draw per position, a ``max_pool2d`` over the whole map, a float mask, a float sum.
Three back ends avoid all of it, with the same law:

* **CPU kernel** (:mod:`.fused_cpu`, C compiled on first use): CPU tensors of float32,
  float64, float16 or bfloat16 (other layouts are made contiguous first). Sampling, exact
  counting and the apply pass run in C with OpenMP and no temporaries.
* **Triton** (:mod:`.fused_triton`) on CUDA devices when Triton is installed (mask painting
  fused with the apply pass).
* **Pure torch** (:mod:`.fused_backends`) for everything else, and as the CPU fallback when no C
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
  - *One pass over x.* ``fused`` computes ``x * scale`` and zeroes the blocks in place.
    ``fused-shared`` folds the scale into its small (N, 1, H, W) mask and multiplies once.

The back ends are the kernels of one PyTorch operator, ``torch.ops.dropblock_bench.drop_block2d``
(and ``drop_block2d_`` in place), registered in :mod:`.fused_ops`: each call's randomness is one
int64 seed drawn here and passed in, so the operator is functional (``torch.compile`` traces it
whole) and backward replays the mask from the seed, through the same operator (exact gradients of
any order). The functions below check arguments, settle the trivial cases and draw the seed;
in eager mode on the CPU or CUDA they call the operator's kernel directly (with an autograd
function of the same formula when a gradient is recorded: on the CPU kernel it keeps the seeds'
positions, so backward does not sample again), since the operator's Python dispatch costs
0.1-0.2 ms a call; compiled, traced and other calls go through the operator.

The contracts (paper, and paper with a shared mask) are declared in :mod:`.records`;
``dbench verify`` checks this module against them.
"""

from __future__ import annotations

import torch
import torch.fx
from torch import Tensor

from . import fused_backends, fused_ops
from ._common import DropBlock2dModule, check_arguments, output_without_sampling
from .fused_backends import CONTRACT, SHARED_CONTRACT, backend_status, count_dropped, fill_blocks, paint_mask
from .fused_sampling import Blocks, sample_bernoulli_positions, sample_blocks

__all__ = [
    "CONTRACT",
    "SHARED_CONTRACT",
    "Blocks",
    "DropBlock2d",
    "DropBlock2dShared",
    "backend_status",
    "count_dropped",
    "drop_block2d",
    "drop_block2d_shared",
    "fill_blocks",
    "paint_mask",
    "sample_bernoulli_positions",
    "sample_blocks",
]

_SEED_HIGH = 2**63 - 1


def draw_seed(generator: torch.Generator | None = None) -> Tensor:
    """A call's randomness: an int64 scalar tensor on the CPU, uniform on [0, 2**63 - 1), from
    ``generator`` (on any device) or, when None, torch's default CPU generator. Under
    ``torch.compile`` (no generator) it is a random op of the graph."""
    if generator is None:  # on the CPU whatever torch.set_default_device says
        return torch.randint(0, _SEED_HIGH, (), dtype=torch.int64, device="cpu")
    return torch.randint(0, _SEED_HIGH, (), dtype=torch.int64, generator=generator, device=generator.device).cpu()


def _eager(x: Tensor) -> bool:
    """Whether ``x``'s call may skip the operator: eager mode (not compiling, not tracing) on the
    CPU or CUDA. Each call through the operator's Python dispatch and autograd wrapper costs
    about 0.1-0.2 ms on this project's 2-core machine, a third of ``x * c`` at the 7x7 ResNet-50
    stage; the kernel and the gradients are the same."""
    return x.device.type in ("cpu", "cuda") and not torch.compiler.is_compiling() and not torch.jit.is_tracing()


def _dispatch(x: Tensor, p: float, block_size: int, *, shared: bool, training: bool, inplace: bool,
              generator: torch.Generator | None, torch_only: bool = False) -> Tensor:
    """Check the arguments, settle the trivial cases, then call the operator (its kernel picks
    the back end: Triton on CUDA, the CPU kernel, else pure torch; ``torch_only``: pure torch),
    or that kernel directly where nothing needs the operator (:func:`_eager`)."""
    check_arguments(x, p, block_size)
    trivial = output_without_sampling(x, p, training=training, inplace=inplace)
    if trivial is not None:
        return trivial
    seed = draw_seed(generator)
    records_gradient = torch.is_grad_enabled() and x.requires_grad
    if _eager(x):
        if not records_gradient:
            return fused_backends.back_end(x, torch_only)(x, int(seed), p, block_size, shared, inplace)
        mask = fused_backends.replayable_mask(x, int(seed), p, block_size, shared, torch_only)
        return fused_ops.MaskReplay.apply(x, mask, inplace)
    if not inplace:
        return fused_ops.drop_block2d(x, seed, p, block_size, shared, torch_only)
    if records_gradient:
        if torch.compiler.is_compiling():  # functional op and a copy; the compiler writes it in place
            return x.copy_(fused_ops.drop_block2d(x, seed, p, block_size, shared, torch_only))
        return fused_ops.InPlaceDropBlock.apply(x, seed, p, block_size, shared, torch_only)
    fused_ops.drop_block2d_(x, seed, p, block_size, shared, torch_only)
    return x


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
        generator (torch.Generator, optional): source of the call's one 64-bit seed; default:
            torch's default CPU generator (also for CUDA inputs). Eager mode only: under
            ``torch.compile`` a generator breaks the graph (Dynamo cannot trace one).

    Returns:
        Tensor[N, C, H, W] with ``x``'s dtype and device (channels-last stays channels-last).
        Backward replays the mask (from the seeds' positions on the CPU kernel in eager mode,
        else from the seed); it is the same linear map, so gradients of any order are exact (in
        eager mode; compiled, the first order: AOTAutograd takes no double backward). Works under ``torch.compile(fullgraph=True)``,
        ``torch.fx.symbolic_trace`` (a leaf call) and on meta tensors: see :mod:`.fused_ops`.
    """
    return _dispatch(x, p, block_size, shared=False, training=training, inplace=inplace, generator=generator)


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
    contract). Arguments and result as :func:`drop_block2d`.
    """
    return _dispatch(x, p, block_size, shared=True, training=training, inplace=inplace, generator=generator)


# Symbolic tracing records these as calls (leaves) instead of tracing into their checks.
torch.fx.wrap("drop_block2d")
torch.fx.wrap("drop_block2d_shared")


class DropBlock2d(DropBlock2dModule):
    """See :func:`drop_block2d`."""

    function = staticmethod(drop_block2d)

    def forward(self, input: Tensor) -> Tensor:
        """input (Tensor[N, C, H, W]) -> Tensor[N, C, H, W] of the same dtype and device."""
        return drop_block2d(input, self.p, self.block_size, training=self.training, inplace=self.inplace)


class DropBlock2dShared(DropBlock2dModule):
    """See :func:`drop_block2d_shared`."""

    function = staticmethod(drop_block2d_shared)

    def forward(self, input: Tensor) -> Tensor:
        """input (Tensor[N, C, H, W]) -> Tensor[N, C, H, W] of the same dtype and device."""
        return drop_block2d_shared(input, self.p, self.block_size, training=self.training, inplace=self.inplace)
