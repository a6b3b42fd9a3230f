"""The law shared by the regularizers that drop whole units with one Bernoulli draw each:
DropPath (stochastic depth: a unit is a sample's residual branch) and SpatialDropout (a unit is
a feature map). What differs between them, and between their implementations, is what a unit
is and how the kept units are scaled; :mod:`.drop_path` and :mod:`.spatial_dropout` name those
choices and reduce them to a :class:`UnitLaw`.

Every unit is kept with probability ``1 - p``, independently; all elements of a unit share its
draw; kept elements are multiplied by ``train_scale`` in training mode and everything by
``eval_scale`` in eval mode. ``p = 1`` drops everything (zeros, never NaN).
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

from dropblock_bench.spec import check_probability

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = ["UnitLaw", "constant_within_units", "reference_keep_mask"]


@dataclasses.dataclass(frozen=True)
class UnitLaw:
    """The exact law of one call of a unit dropout.

    Attributes:
        p: drop probability of each unit, in [0, 1].
        units: independent draws in the call (1 for one draw for the whole batch).
        train_scale: factor on kept elements in training mode (0 at ``p = 1``: nothing is kept).
        eval_scale: factor on every element in eval mode.
    """

    p: float
    units: int
    train_scale: float
    eval_scale: float

    def __post_init__(self) -> None:
        check_probability(self.p)
        if self.units < 1:
            raise ValueError(f"a call has at least one unit, got {self.units}")

    @property
    def drop_rate(self) -> float:
        """Expected fraction of dropped elements: ``p`` (every unit has the same size)."""
        return self.p

    @property
    def drop_rate_variance(self) -> float:
        """Variance of one call's fraction of dropped elements: ``p (1 - p) / units``."""
        return self.p * (1.0 - self.p) / self.units

    @property
    def train_mean_factor(self) -> float:
        """``E[output] / x`` in training mode: ``(1 - p) * train_scale``. Equal to
        :attr:`eval_scale` when training and evaluation agree in expectation."""
        return (1.0 - self.p) * self.train_scale

    @property
    def mean_shift(self) -> float:
        """``E[training output] / eval output`` for the same input: 1 when they agree in
        expectation (inverted scaling, or scaling at eval time), ``1 - p`` with no scaling."""
        return self.train_mean_factor / self.eval_scale if self.eval_scale else math.nan

    @property
    def variance_shift(self) -> float:
        """``Var(training output) / Var(eval output)`` for zero-mean unit-variance input:
        ``(1 - p) * train_scale**2 / eval_scale**2``. ``1 / (1 - p)`` for inverted scaling and
        for scaling at eval time alike: what a following BatchNorm, whose statistics are
        collected in training, meets at eval time scaled by its inverse."""
        return (1.0 - self.p) * self.train_scale**2 / self.eval_scale**2 if self.eval_scale else math.nan


def reference_keep_mask(unit_shape: tuple[int, ...], p: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """One Bernoulli(1 - p) keep draw per unit: a bool tensor of ``unit_shape`` (broadcast it
    over the input). Uniforms in float64, so even p near 0 or 1 is exact to 2**-53."""
    import torch

    check_probability(p)
    return torch.rand(unit_shape, generator=generator, dtype=torch.float64) >= p


def constant_within_units(dropped: torch.Tensor, unit_shape: tuple[int, ...]) -> bool:
    """Whether a bool mask of the input's shape is constant over every unit: ``unit_shape`` has
    the input's rank, with 1 along the dimensions a unit spans (e.g. ``(N, 1, 1, 1)`` for one
    draw per sample). Exact, no statistics."""
    dims = tuple(d for d, size in enumerate(unit_shape) if size == 1 and dropped.shape[d] != 1)
    if not dims:
        return True
    return bool((dropped.amax(dim=dims, keepdim=True) == dropped.amin(dim=dims, keepdim=True)).all())
