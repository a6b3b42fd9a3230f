"""The mathematics of DropPath (stochastic depth): a residual branch ``f(x)`` is dropped whole.

Huang et al. (2016) keep each residual block with a survival probability and, at test time,
multiply its branch by that probability; timm's ``DropPath`` and torchvision's
``stochastic_depth`` instead divide the kept branches by ``1 - p`` in training and leave eval
mode alone. Both agree in expectation; they differ in what a user sees at each mode. A call
``f(x, p)`` takes the branch's output, of any rank, dimension 0 being the sample.

Contract axes (the first value is torchvision's and timm's default):

* ``unit``: ``row``, one draw per sample (the branch of that sample); ``batch``, one draw for
  the whole call (torchvision's ``mode="batch"``); ``element``, one per element (plain dropout
  by mistake).
* ``scale``: ``inverted``, ``1 / (1 - p)`` on kept rows in training, identity in eval mode;
  ``eval-time``, identity in training and ``x (1 - p)`` in eval mode (Huang et al.'s).

The stochastic-depth blog's residual block is ``unit=batch, scale=eval-time``: its caller draws
one ``active`` flag per forward call, for the whole batch, and eval mode multiplies the branch by
the block's survival probability.
"""

from __future__ import annotations

import dataclasses
import enum
import math

from .axes import coerce_fields
from .unit_dropout import UnitLaw

__all__ = ["DEFAULT_CONTRACT", "DropPathContract", "DropPathScale", "DropPathUnit", "law", "unit_shape"]


class DropPathUnit(enum.StrEnum):
    """What one Bernoulli draw decides."""

    ROW = "row"
    """One draw per sample."""
    BATCH = "batch"
    """One draw for the whole call."""
    ELEMENT = "element"
    """One draw per element."""


class DropPathScale(enum.StrEnum):
    """Where the ``1 - p`` correction goes."""

    INVERTED = "inverted"
    """Kept branches ``/ (1 - p)`` in training; identity in eval mode."""
    EVAL_TIME = "eval-time"
    """Identity in training; ``x (1 - p)`` in eval mode."""


@dataclasses.dataclass(frozen=True)
class DropPathContract:
    """What a DropPath implementation promises; fields take the enum members or their values."""

    unit: DropPathUnit | str = DropPathUnit.ROW
    scale: DropPathScale | str = DropPathScale.INVERTED

    def __post_init__(self) -> None:
        coerce_fields(self, "drop-path", {"unit": DropPathUnit, "scale": DropPathScale})

    def __str__(self) -> str:
        return f"unit={self.unit}, scale={self.scale}"


DEFAULT_CONTRACT = DropPathContract()
"""Row draws, inverted scaling: timm's ``DropPath`` and torchvision's ``StochasticDepth("row")``."""


def unit_shape(contract: DropPathContract, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of one call's draws, broadcastable to the input's ``shape``:
    ``(N, 1, ..., 1)`` per row, all ones for the batch, ``shape`` per element."""
    if not shape:
        raise ValueError("drop-path needs an input of rank 1 or more (dimension 0 is the sample)")
    if contract.unit is DropPathUnit.ELEMENT:
        return shape
    rows = shape[0] if contract.unit is DropPathUnit.ROW else 1
    return (rows, *(1 for _ in shape[1:]))


def law(contract: DropPathContract, p: float, shape: tuple[int, ...]) -> UnitLaw:
    """The exact law of one call on an input of ``shape`` (see :class:`.UnitLaw`)."""
    units = math.prod(unit_shape(contract, shape))
    if contract.scale is DropPathScale.EVAL_TIME:
        return UnitLaw(p, units, train_scale=1.0, eval_scale=1.0 - p)
    return UnitLaw(p, units, train_scale=1.0 / (1.0 - p) if p < 1.0 else 0.0, eval_scale=1.0)
