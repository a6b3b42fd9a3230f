"""``fused`` as PyTorch operators: ``torch.ops.dropblock_bench.drop_block2d`` and its in-place
twin ``drop_block2d_``, each one ``torch.library`` definition with per-device kernels.

    drop_block2d(Tensor x, Tensor seed, float p, int block_size, bool shared, bool torch_only=False) -> Tensor
    drop_block2d_(Tensor(a!) x, Tensor seed, float p, int block_size, bool shared, bool torch_only=False) -> ()

* ``seed``: an int64 scalar tensor (on the CPU) holding the call's whole randomness; the output is
  a deterministic function of ``(x, seed, p, block_size, shared)`` and the back end. That makes
  the operators functional: ``torch.compile`` traces them with no graph break, and backward
  replays the same mask from the seed.
* Kernels: the compiled C kernel on CPU (pure torch when it cannot be built or takes no such
  dtype), Triton on CUDA (pure torch without Triton), pure torch on every other device;
  ``torch_only=True`` takes pure torch everywhere (its own mask for a seed: the back ends
  sample differently, each exactly).
* Arguments are checked by the Python functions in :mod:`.fused` (0 < p < 1, training mode,
  a 4-D floating input); the operators assume it.
* Autograd: for a fixed seed the operator is linear in ``x`` (multiply by mask x scale), so its
  derivative is the operator itself applied to the incoming gradient: backward calls
  ``drop_block2d`` on it, which has this same autograd formula, so double backward (and any
  order) is exact. Backward saves the seed only. The in-place operator has no autograd formula
  (PyTorch takes none for a mutating operator). Eager calls skip the operator (:mod:`.fused`):
  those that record a gradient go through :class:`MaskReplay`, of the same formula.
* Fake (meta) kernels give the output's shape, dtype and layout (:func:`.fused_backends.output_format`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from . import fused_backends
from .fused_backends import output_format, torch_drop

__all__ = ["drop_block2d", "drop_block2d_"]


def _check_seed(seed: Tensor) -> int:
    if seed.dtype != torch.int64 or seed.numel() != 1:
        raise ValueError(f"seed must be an int64 tensor of one element, got {seed.dtype} of shape {tuple(seed.shape)}")
    return int(seed.cpu())


@torch.library.custom_op("dropblock_bench::drop_block2d", mutates_args=())
def drop_block2d(x: Tensor, seed: Tensor, p: float, block_size: int, shared: bool, torch_only: bool = False) -> Tensor:
    """DropBlock of ``x`` (N, C, H, W) with the paper's contract (``shared``: one mask per
    sample); see the module docstring. This body is the kernel of devices without their own:
    pure torch."""
    return torch_drop(x, _check_seed(seed), p, block_size, shared, inplace=False)


@drop_block2d.register_kernel(("cpu", "cuda"))
def _drop_block2d_device(x: Tensor, seed: Tensor, p: float, block_size: int, shared: bool, torch_only: bool = False) -> Tensor:
    return fused_backends.back_end(x, torch_only)(x, _check_seed(seed), p, block_size, shared, inplace=False)


@drop_block2d.register_fake
def _drop_block2d_fake(x: Tensor, seed: Tensor, p: float, block_size: int, shared: bool, torch_only: bool = False) -> Tensor:
    return torch.empty_like(x, memory_format=output_format(x))


def _setup_context(ctx: Any, inputs: Sequence[Any], output: Tensor) -> None:
    _, seed, ctx.p, ctx.block_size, ctx.shared, ctx.torch_only = inputs
    ctx.save_for_backward(seed)


def _backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
    (seed,) = ctx.saved_tensors
    return drop_block2d(grad, seed, ctx.p, ctx.block_size, ctx.shared, ctx.torch_only), None, None, None, None, None


drop_block2d.register_autograd(_backward, setup_context=_setup_context)


@torch.library.custom_op("dropblock_bench::drop_block2d_", mutates_args={"x"})
def drop_block2d_(x: Tensor, seed: Tensor, p: float, block_size: int, shared: bool, torch_only: bool = False) -> None:
    """:func:`drop_block2d` written into ``x`` (same mask for the same seed and back end)."""
    torch_drop(x, _check_seed(seed), p, block_size, shared, inplace=True)


@drop_block2d_.register_kernel(("cpu", "cuda"))
def _drop_block2d_device_(x: Tensor, seed: Tensor, p: float, block_size: int, shared: bool, torch_only: bool = False) -> None:
    fused_backends.back_end(x, torch_only)(x, _check_seed(seed), p, block_size, shared, inplace=True)


@drop_block2d_.register_fake
def _drop_block2d_fake_(x: Tensor, seed: Tensor, p: float, block_size: int, shared: bool, torch_only: bool = False) -> None:
    return None


class MaskReplay(torch.autograd.Function):
    """Eager calls that record a gradient, without the operator's Python dispatch (about 0.1 ms
    a call): ``mask.apply(x)`` (a :func:`.fused_backends.replayable_mask`), written into ``x``
    when ``inplace``; backward is this function again with the same mask on the gradient, so
    gradients of every order are exact, as through the operator. The CPU kernel's mask keeps
    its seeds' positions (through ``save_for_backward``, so saved-tensor hooks see them), and
    backward applies them without sampling again."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, mask: fused_backends.KernelMask | fused_backends.SeededMask, inplace: bool) -> Tensor:
        state = mask.tensors()
        ctx.save_for_backward(*state)
        ctx.mask = mask.with_tensors([None] * len(state))
        out = mask.apply(x, inplace)
        if inplace:
            ctx.mark_dirty(x)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        mask = ctx.mask.with_tensors(ctx.saved_tensors)
        if not torch.is_grad_enabled():  # a plain backward: nothing to record, skip the wrapper
            return mask.apply(grad), None, None
        return MaskReplay.apply(grad, mask, False), None, None


class InPlaceDropBlock(torch.autograd.Function):
    """In-place calls that need a gradient and go through the operator (traced with
    ``torch.jit.trace``, or on a device other than the CPU and CUDA): ``drop_block2d_`` writes
    into ``x``; backward is ``drop_block2d`` on the gradient (differentiable again)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, seed: Tensor, p: float, block_size: int, shared: bool, torch_only: bool) -> Tensor:
        drop_block2d_(x, seed, p, block_size, shared, torch_only)
        ctx.mark_dirty(x)
        ctx.save_for_backward(seed)
        ctx.p, ctx.block_size, ctx.shared, ctx.torch_only = p, block_size, shared, torch_only
        return x

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        return _backward(ctx, grad)
