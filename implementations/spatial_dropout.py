"""SpatialDropout: whole feature maps dropped (Tompson et al., 2015), on (N, C, ...) inputs.

Two implementations of one contract, ``CONTRACT`` (one draw per (sample, channel) map, kept maps
divided by ``1 - p``; the law is :mod:`dropblock_bench.families.spatial_dropout`), the one of
``torch.nn.functional.dropout2d`` and ``dropout3d`` on 4-D and 5-D inputs:

* :func:`spatial_dropout` (fast): one pass over ``x`` (half precision multiplies in float32 and
  rounds once), a multiply by a per-map factor computed in float32 on N x C numbers, in place too; any number of spatial dimensions (``dropout2d``
  reads a 3-D input as (N, C, L) only with a warning).
* :func:`spatial_dropout_reference`, written for reading: a Bernoulli keep per map, divided by
  the keep probability.

``p = 1`` gives zeros, never NaN, still in the autograd graph; ``training=False`` returns ``x``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dropblock_bench.families.spatial_dropout import unit_shape
from dropblock_bench.spec import check_probability

from ._common import output_without_sampling
from ._unit_dropout import drop_units, uniforms
from .family_records import SPATIAL_DROPOUT_CONTRACT

__all__ = ["CONTRACT", "SpatialDropout", "spatial_dropout", "spatial_dropout_reference"]

CONTRACT = SPATIAL_DROPOUT_CONTRACT
"""One draw per map, inverted scaling."""


def _check(x: Tensor, p: float) -> tuple[int, ...]:
    """The draws' shape (N, C, 1, ...); arguments checked."""
    if not isinstance(x, Tensor):
        raise ValueError(f"input must be a torch.Tensor, got {type(x).__name__}")  # noqa: TRY004 - one error type for every bad argument
    if not x.is_floating_point():
        raise ValueError(f"input must be a floating-point tensor, got {x.dtype}")
    check_probability(p)
    return unit_shape(CONTRACT, tuple(x.shape))


def spatial_dropout(x: Tensor, p: float, *, training: bool = True, inplace: bool = False,
                    generator: torch.Generator | None = None) -> Tensor:  # fmt: skip
    """Drop each (sample, channel) map with probability ``p``; kept maps are divided by ``1 - p``.

    Args:
        x (Tensor[N, C, ...]): floating point, one or more spatial dimensions.
        p (float): drop probability of a map, in [0, 1].
        training (bool): ``False`` returns ``x``. Default ``True``.
        inplace (bool): write into ``x``. Default ``False``.
        generator (torch.Generator, optional): source of the N x C uniforms.

    Returns:
        Tensor of ``x``'s shape, dtype and device; one pass over ``x``.
    """
    maps = _check(x, p)
    trivial = output_without_sampling(x, p, training=training, inplace=inplace)
    if trivial is not None:
        return trivial
    return drop_units(x, p, maps, scale=True, inplace=inplace, generator=generator)


def spatial_dropout_reference(x: Tensor, p: float, *, training: bool = True,
                              generator: torch.Generator | None = None) -> Tensor:  # fmt: skip
    """:func:`spatial_dropout`, step by step: keep each map with probability ``1 - p``, then
    divide the kept ones by that probability."""
    maps = _check(x, p)
    trivial = output_without_sampling(x, p, training=training, inplace=False)
    if trivial is not None:
        return trivial
    keep_probability = 1.0 - p
    keep = (uniforms(maps, x.device, generator) < keep_probability).to(x.dtype)
    return x / keep_probability * keep


class SpatialDropout(nn.Module):
    """See :func:`spatial_dropout`.

    Args:
        p (float): drop probability of a map, in [0, 1]. Default 0.1.
        inplace (bool): write into the input. Default ``False``.
    """

    def __init__(self, p: float = 0.1, inplace: bool = False) -> None:
        super().__init__()
        check_probability(p)
        self.p, self.inplace = p, inplace

    def forward(self, input: Tensor) -> Tensor:
        """input (Tensor[N, C, ...]) -> Tensor of the same shape, dtype and device."""
        return spatial_dropout(input, self.p, training=self.training, inplace=self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
