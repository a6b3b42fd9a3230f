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
    ``p``, multiplying kept units by ``1 / (1 - p)`` when ``scale`` (0 < p < 1). The factor is
    never rounded to a half-precision dtype (in bfloat16 ``1 / 0.9`` would be 1.109375, every kept
    unit 0.16 % low): float16 and bfloat16 products are taken in float32 and rounded once (out of
    place through a float32 intermediate); float32 and float64 inputs take one pass."""
    keep = uniforms(unit_shape, x.device, generator) >= p
    factor = torch.where(keep, 1.0 / (1.0 - p) if scale else 1.0, 0.0).to(torch.promote_types(x.dtype, torch.float32))
    if inplace:
        return x.mul_(factor)
    return (x * factor).to(x.dtype)
