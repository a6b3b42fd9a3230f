"""The mathematics of SpatialDropout (Tompson et al., 2015): whole feature maps dropped, since
neighbouring activations of a map are correlated and dropping single units of it regularizes
little. A call ``f(x, p)`` takes ``(N, C, ...)``; PyTorch's ``dropout2d`` and ``dropout3d``
are the usual implementations (``dropout2d`` on a 3-D input treats it as ``(N, C, L)`` and
warns: PyTorch's own convention, which a peer adapter must declare).

Contract axes (the first value is PyTorch's):

* ``unit``: ``map``, one draw per (sample, channel); ``sample``, one draw per sample, shared by
  its channels; ``element``, one per element (plain dropout).
* ``scale``: ``inverted``, kept maps ``/ (1 - p)`` in training; ``none``, no rescaling (the
  training output's mean is ``1 - p`` of eval's).
"""

from __future__ import annotations

import dataclasses
import enum
import math

from .axes import coerce_fields
from .unit_dropout import UnitLaw

__all__ = ["DEFAULT_CONTRACT", "SpatialDropoutContract", "SpatialDropoutScale", "SpatialDropoutUnit", "law", "unit_shape"]


class SpatialDropoutUnit(enum.StrEnum):
    """What one Bernoulli draw decides."""

    MAP = "map"
    """One draw per (sample, channel) map."""
    SAMPLE = "sample"
    """One draw per sample, all its channels together."""
    ELEMENT = "element"
    """One draw per element."""


class SpatialDropoutScale(enum.StrEnum):
    """How kept maps are scaled in training."""

    INVERTED = "inverted"
    """``/ (1 - p)``; identity in eval mode."""
    NONE = "none"
    """Not at all; identity in eval mode."""


@dataclasses.dataclass(frozen=True)
class SpatialDropoutContract:
    """What a SpatialDropout implementation promises; fields take the enum members or their values."""

    unit: SpatialDropoutUnit | str = SpatialDropoutUnit.MAP
    scale: SpatialDropoutScale | str = SpatialDropoutScale.INVERTED

    def __post_init__(self) -> None:
        coerce_fields(self, "spatial-dropout", {"unit": SpatialDropoutUnit, "scale": SpatialDropoutScale})

    def __str__(self) -> str:
        return f"unit={self.unit}, scale={self.scale}"


DEFAULT_CONTRACT = SpatialDropoutContract()
"""Per-map draws, inverted scaling: ``torch.nn.functional.dropout2d`` on (N, C, H, W)."""


def unit_shape(contract: SpatialDropoutContract, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of one call's draws, broadcastable to ``shape`` (N, C, ...): ``(N, C, 1, ...)``
    per map, ``(N, 1, ...)`` per sample, ``shape`` per element."""
    if len(shape) < 3:
        raise ValueError(f"spatial dropout needs (N, C, ...) with at least one spatial dimension, got shape {shape}")
    if contract.unit is SpatialDropoutUnit.ELEMENT:
        return shape
    kept = 2 if contract.unit is SpatialDropoutUnit.MAP else 1
    return (*shape[:kept], *(1 for _ in shape[kept:]))


def law(contract: SpatialDropoutContract, p: float, shape: tuple[int, ...]) -> UnitLaw:
    """The exact law of one call on an input of ``shape`` (see :class:`.UnitLaw`)."""
    units = math.prod(unit_shape(contract, shape))
    if contract.scale is SpatialDropoutScale.NONE:
        return UnitLaw(p, units, train_scale=1.0, eval_scale=1.0)
    return UnitLaw(p, units, train_scale=1.0 / (1.0 - p) if p < 1.0 else 0.0, eval_scale=1.0)
