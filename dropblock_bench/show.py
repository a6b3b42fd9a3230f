"""``dbench show``'s engine: the call it draws for each family (a default shape and arguments,
or the options given), and one sampled mask of it. No printing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dropblock_bench.errors import DbenchError
from dropblock_bench.families.catalog import family_named
from dropblock_bench.run import matrix

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

    from dropblock_bench.registry import Implementation

__all__ = ["DEFAULTS", "drawn_case", "sample"]

DEFAULTS: dict[str, tuple[str, float, int, int]] = {
    "dropblock2d": ("1x3x14x14", 0.2, 5, 0),
    "dropblock3d": ("1x2x4x10x10", 0.2, 3, 0),
    "drop-path": ("8x6x6", 0.5, 0, 0),
    "spatial-dropout": ("1x8x6x6", 0.3, 0, 0),
    "cutout": ("1x3x16x16", 0.0, 6, 2),
}
"""Per family: the shape drawn, and its p, block size (Cutout: hole length) and holes where the
family's call takes them, unless given."""


def drawn_case(implementation: Implementation, shape: str | None = None, p: float | None = None,
               block_size: int | None = None, holes: int | None = None) -> matrix.RunCase:  # fmt: skip
    """The call to draw: the options given, the family's defaults for the rest. An option the
    family's call does not take, or a shape of a rank it does not take, raises
    :class:`~dropblock_bench.errors.DbenchError` in one line."""
    family = family_named(implementation.family)
    default_shape, default_p, default_block, default_holes = DEFAULTS[family.name]
    for flag, value, taken in (("--p", p, family.takes_p), ("--block-size", block_size, family.takes_block),
                               ("--holes", holes, "n_holes" in family.arguments)):  # fmt: skip
        if value is not None and not taken:
            raise DbenchError(f"{implementation.name} ({family.name}) takes no {flag}; its call is {family.signature}")
    case = matrix.RunCase(
        implementation.name, "cpu", "float32", matrix.parse_shape(shape or default_shape),
        block_size if block_size is not None else default_block, p if p is not None else default_p, "forward",
        family=family.name, holes=holes if holes is not None else default_holes,
    )  # fmt: skip
    matrix.check_shape(case.shape, family.name)
    return case


def sample(implementation: Implementation, case: matrix.RunCase, seed: int) -> torch.Tensor:
    """One bool drop mask of the case's shape from ``implementation`` (its exceptions propagate)."""
    from dropblock_bench.verify.sampling import sample_drop_mask

    return sample_drop_mask(implementation, implementation.load(), case.shape, tuple(case.arguments.values()), seed)
