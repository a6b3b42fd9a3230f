"""What DropPath and SpatialDropout share: one Bernoulli keep per unit, applied in one pass as a
per-unit factor ``keep / (1 - p)`` (the law: :mod:`dropblock_bench.families.unit_dropout`)."""

from __future__ import annotations

import torch
from torch import Tensor


def uniforms(shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None) -> Tensor:
    """float32 uniforms of ``shape`` on ``device``, drawn on the generator's device when one is given."""
    if generator is None:
        return torch.rand(shape, device=device)
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def drop_units(x: Tensor, p: float, unit_shape: tuple[int, ...], *, scale: bool, inplace: bool,
               generator: torch.Generator | None) -> Tensor:  # fmt: skip
    """Keep each unit (``unit_shape`` broadcast over ``x``) when its float32 uniform is at least
    ``p``, multiplying kept units by ``1 / (1 - p)`` when ``scale``: one pass over ``x``, the
    factor computed in float32 on the units alone (0 < p < 1)."""
    keep = uniforms(unit_shape, x.device, generator) >= p
    factor = torch.where(keep, 1.0 / (1.0 - p) if scale else 1.0, 0.0).to(x.dtype)
    return x.mul_(factor) if inplace else x * factor
