"""DropPath (stochastic depth): a residual branch's output dropped whole, per sample.

Three implementations, each declaring the contract it has (the law is
:mod:`dropblock_bench.families.drop_path`):

* :func:`drop_path` (``CONTRACT``: row draws, inverted scaling), fast: one pass over ``x`` (float32
  and float64; half precision multiplies in float32 and rounds once), a
  multiply by a per-sample factor ``keep / (1 - p)`` computed in float32 on N numbers, in place
  too. The draws are float32 uniforms compared with ``p`` (never ``floor(1 - p + u)`` in the
  input's dtype, which in bfloat16 keeps 0.9884 of the rows instead of 0.99).
* :func:`drop_path_reference` (same contract), written for reading: a Bernoulli keep per sample,
  divided by the keep probability.
* :func:`drop_path_blog` (``BLOG_CONTRACT``: one draw per call, scaling at eval time): the
  stochastic-depth blog's residual block, whose caller flips one ``active`` coin per forward
  call for the whole batch and whose eval mode multiplies the branch by its survival
  probability.

Each takes the branch's output ``x`` (any rank, dimension 0 the sample) and returns a tensor of
its shape, dtype and device. ``p = 1`` gives zeros, never NaN, still in the autograd graph.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dropblock_bench.families.drop_path import unit_shape
from dropblock_bench.spec import check_probability

from ._common import output_without_sampling
from ._unit_dropout import drop_units, uniforms
from .family_records import DROP_PATH_BLOG_CONTRACT, DROP_PATH_CONTRACT

__all__ = ["BLOG_CONTRACT", "CONTRACT", "DropPath", "drop_path", "drop_path_blog", "drop_path_reference"]

CONTRACT = DROP_PATH_CONTRACT
""":func:`drop_path` and :func:`drop_path_reference`: row draws, inverted scaling."""
BLOG_CONTRACT = DROP_PATH_BLOG_CONTRACT
""":func:`drop_path_blog`: one draw per call, scaling at eval time."""


def _check(x: Tensor, p: float) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"input must be a torch.Tensor, got {type(x).__name__}")  # noqa: TRY004 - one error type for every bad argument
    if x.dim() < 1:
        raise ValueError("input must have a sample dimension (rank 1 or more), got a 0-D tensor")
    if not x.is_floating_point():
        raise ValueError(f"input must be a floating-point tensor, got {x.dtype}")
    check_probability(p)


def _row_shape(x: Tensor) -> tuple[int, ...]:
    return unit_shape(CONTRACT, tuple(x.shape))


def drop_path(x: Tensor, p: float, *, training: bool = True, inplace: bool = False,
              generator: torch.Generator | None = None) -> Tensor:  # fmt: skip
    """Drop each sample's branch with probability ``p``; kept ones are divided by ``1 - p``.

    Args:
        x (Tensor[N, ...]): a residual branch's output, floating point.
        p (float): drop probability of a sample, in [0, 1].
        training (bool): ``False`` returns ``x``. Default ``True``.
        inplace (bool): write into ``x``. Default ``False``.
        generator (torch.Generator, optional): source of the N uniforms.

    Returns:
        Tensor of ``x``'s shape, dtype and device; one pass over ``x``.
    """
    _check(x, p)
    trivial = output_without_sampling(x, p, training=training, inplace=inplace)
    if trivial is not None:
        return trivial
    return drop_units(x, p, _row_shape(x), scale=True, inplace=inplace, generator=generator)


def drop_path_reference(x: Tensor, p: float, *, training: bool = True,
                        generator: torch.Generator | None = None) -> Tensor:  # fmt: skip
    """:func:`drop_path`, step by step: keep each sample with probability ``1 - p``, then
    divide the kept ones by that probability."""
    _check(x, p)
    trivial = output_without_sampling(x, p, training=training, inplace=False)
    if trivial is not None:
        return trivial
    keep_probability = 1.0 - p
    keep = (uniforms((x.shape[0],), x.device, generator) < keep_probability).to(x.dtype)
    return x / keep_probability * keep.view(_row_shape(x))


def drop_path_blog(x: Tensor, p: float, *, training: bool = True, generator: torch.Generator | None = None) -> Tensor:
    """The stochastic-depth blog's rule: in training one coin for the whole call (the branch
    of every sample is kept, unscaled, or all dropped); in eval mode the branch times its
    survival probability ``1 - p``."""
    _check(x, p)
    if not training:
        return x * (1.0 - p)
    active = float(uniforms((1,), x.device, generator)[0]) >= p
    return x if active else x.masked_fill(torch.ones((), dtype=torch.bool, device=x.device), 0.0)  # zeros, in the graph


class DropPath(nn.Module):
    """See :func:`drop_path`.

    Args:
        p (float): drop probability of a sample's branch, in [0, 1]. Default 0.1.
        inplace (bool): write into the input. Default ``False``.
    """

    def __init__(self, p: float = 0.1, inplace: bool = False) -> None:
        super().__init__()
        check_probability(p)
        self.p = p
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        """input (Tensor[N, ...]) -> Tensor of the same shape, dtype and device."""
        return drop_path(input, self.p, training=self.training, inplace=self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
