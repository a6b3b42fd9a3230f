"""The mathematics of Cutout (DeVries and Taylor, 2017): square holes cut out of input images.

A call ``f(x, n_holes, length)`` takes ``(N, C, H, W)`` (or one ``(C, H, W)`` image). The
reference code (and the Cutout blog's) draws each hole's centre ``(y, x)`` uniformly over the
whole image and zeroes rows ``clip(y - L // 2, 0, H)`` up to ``clip(y + L // 2, 0, H)``
exclusive, and the same for columns: a square of side ``2 * (L // 2)`` (``L`` itself for even
``L``, ``L - 1`` for odd), cut at the border. Holes are drawn independently and may overlap.

Contract axes (the first value is the reference code's):

* ``centre``: ``anywhere``, uniform over all ``H x W`` positions, the patch clipped at the
  border; ``fits``, uniform over the centres whose whole patch lies inside the image.
* ``holes``: ``shared``, one hole set per image, the same for all its channels; ``per-channel``,
  every channel its own.
* ``rescale``: ``none``; ``kept-fraction``, each map multiplied by ``H * W / kept``.

Cutout is a training-time augmentation: in eval mode it is the identity. Rows and columns of a
hole are independent, so one hole covers pixel ``(i, j)`` with probability ``r[i] * c[j]`` and
``n`` holes leave it with probability ``(1 - r[i] c[j]) ** n``.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
from typing import TYPE_CHECKING

from dropblock_bench.spec import block_extent, check_positive_int, explained_by_boxes

from .axes import coerce_fields

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = [
    "DEFAULT_CONTRACT",
    "CutoutCentre",
    "CutoutContract",
    "CutoutHoles",
    "CutoutRescale",
    "centre_positions",
    "expected_masked_fraction",
    "explained_by_holes",
    "hole_rows",
    "masked_count_variance",
    "masked_probability_map",
    "patch_side",
    "reference_cutout_mask",
    "variance_shift",
]


class CutoutCentre(enum.StrEnum):
    """Where a hole's centre may fall."""

    ANYWHERE = "anywhere"
    """Any of the ``H x W`` positions; the patch is clipped at the border."""
    FITS = "fits"
    """Only where the whole patch lies inside the image."""


class CutoutHoles(enum.StrEnum):
    """Whether the channels of an image share its holes."""

    SHARED = "shared"
    """One hole set per image."""
    PER_CHANNEL = "per-channel"
    """One hole set per channel."""


class CutoutRescale(enum.StrEnum):
    """How the kept pixels are scaled."""

    NONE = "none"
    """Not at all."""
    KEPT_FRACTION = "kept-fraction"
    """Each map by ``H * W / kept`` (0 when nothing is kept)."""


@dataclasses.dataclass(frozen=True)
class CutoutContract:
    """What a Cutout implementation promises; fields take the enum members or their values."""

    centre: CutoutCentre | str = CutoutCentre.ANYWHERE
    holes: CutoutHoles | str = CutoutHoles.SHARED
    rescale: CutoutRescale | str = CutoutRescale.NONE

    def __post_init__(self) -> None:
        coerce_fields(self, "cutout", {"centre": CutoutCentre, "holes": CutoutHoles, "rescale": CutoutRescale})

    def __str__(self) -> str:
        return f"centre={self.centre}, holes={self.holes}, rescale={self.rescale}"


DEFAULT_CONTRACT = CutoutContract()
"""The reference code's: centres anywhere (patches clipped), holes shared by channels, no rescale."""


def patch_side(length: int) -> int:
    """The side of an unclipped hole: ``2 * (length // 2)`` (``length - 1`` for odd lengths)."""
    check_positive_int("length", length)
    return 2 * (length // 2)


def centre_positions(contract: CutoutContract, size: int, length: int) -> range:
    """The centre positions along one axis of ``size``; a centre ``c`` covers ``c - length // 2``
    to ``c + length // 2 - 1``. ``fits`` with a patch larger than ``size`` raises ``ValueError``."""
    check_positive_int("size", size)
    half = patch_side(length) // 2
    if contract.centre is CutoutCentre.ANYWHERE:
        return range(size)
    if 2 * half > size:
        raise ValueError(f"a Cutout patch of side {2 * half} does not fit in {size} positions; use centre='anywhere'")
    return range(half, min(size - half, size - 1) + 1)  # a side-0 patch (length 1) still has its centre inside


def _covers(centre: int, position: int, half: int) -> bool:
    return centre - half <= position <= centre + half - 1


def hole_rows(contract: CutoutContract, size: int, length: int) -> list[float]:
    """For each position along one axis, the probability that one hole's rows cover it."""
    centres, half = centre_positions(contract, size, length), patch_side(length) // 2
    return [sum(_covers(c, i, half) for c in centres) / len(centres) for i in range(size)]


def _pair_rows(contract: CutoutContract, size: int, length: int) -> list[list[float]]:
    """``[i][i2]``: the probability that one hole's rows cover both ``i`` and ``i2``."""
    centres, half = centre_positions(contract, size, length), patch_side(length) // 2
    return [[sum(_covers(c, i, half) and _covers(c, i2, half) for c in centres) / len(centres) for i2 in range(size)]
            for i in range(size)]  # fmt: skip


def masked_probability_map(contract: CutoutContract, n_holes: int, length: int, height: int, width: int) -> torch.Tensor:
    """Exact probability that each pixel is cut out: float64 (H, W), ``1 - (1 - r[i] c[j]) ** n``.
    The same for shared and per-channel holes (sharing ties channels, not marginals)."""
    import torch

    check_positive_int("n_holes", n_holes)
    rows = torch.tensor(hole_rows(contract, height, length), dtype=torch.float64)
    cols = torch.tensor(hole_rows(contract, width, length), dtype=torch.float64)
    return 1.0 - (1.0 - torch.outer(rows, cols)) ** n_holes


def expected_masked_fraction(contract: CutoutContract, n_holes: int, length: int, height: int, width: int) -> float:
    """Exact expected fraction of a map's pixels cut out (the mean of :func:`masked_probability_map`)."""
    return float(masked_probability_map(contract, n_holes, length, height, width).mean())


def masked_count_variance(contract: CutoutContract, n_holes: int, length: int, height: int, width: int) -> float:
    """Exact variance of the number of pixels cut out of one map (pixels squared).

    ``sum over pixel pairs (u, v) of (1 - a_u - a_v + a_uv) ** n - (1 - a_u) ** n (1 - a_v) ** n``:
    ``a_u`` the chance one hole covers ``u``, ``a_uv`` that it covers both (rows times columns).
    Costs ``(H * W) ** 2`` operations.
    """
    import torch

    check_positive_int("n_holes", n_holes)
    rows = torch.tensor(hole_rows(contract, height, length), dtype=torch.float64)
    cols = torch.tensor(hole_rows(contract, width, length), dtype=torch.float64)
    pair_rows = torch.tensor(_pair_rows(contract, height, length), dtype=torch.float64)
    pair_cols = torch.tensor(_pair_rows(contract, width, length), dtype=torch.float64)
    covered = torch.outer(rows, cols)  # a_u, (H, W)
    total = 0.0
    for i in range(height):
        for i2 in range(height):
            a_u, a_v = covered[i][:, None], covered[i2][None, :]  # (W, 1), (1, W)
            both = pair_rows[i, i2] * pair_cols  # a_uv, (W, W)
            total += float(((1 - a_u - a_v + both) ** n_holes - (1 - a_u) ** n_holes * (1 - a_v) ** n_holes).sum())
    return max(total, 0.0)


def _masked_counts(contract: CutoutContract, n_holes: int, length: int, height: int, width: int, limit: int) -> dict[int, float]:
    """The exact distribution of the number of pixels one map loses, by enumerating every
    combination of hole centres (at most ``limit``; more raises ``ValueError``)."""
    rows, cols = centre_positions(contract, height, length), centre_positions(contract, width, length)
    combinations = (len(rows) * len(cols)) ** n_holes
    if combinations > limit:
        raise ValueError(f"{combinations} hole placements to enumerate (more than {limit}); use fewer holes or a smaller map")
    half = patch_side(length) // 2

    def span(c: int, size: int) -> range:
        return range(max(c - half, 0), min(c + half, size))

    counts: dict[int, float] = {}
    for holes in itertools.product(itertools.product(rows, cols), repeat=n_holes):
        cut = {(i, j) for y, x in holes for i in span(y, height) for j in span(x, width)}
        counts[len(cut)] = counts.get(len(cut), 0.0) + 1.0 / combinations
    return counts


def variance_shift(contract: CutoutContract, n_holes: int, length: int, height: int, width: int, *,
                   enumeration_limit: int = 200_000) -> float:  # fmt: skip
    """``E[training output**2] / E[eval output**2]`` per pixel for zero-mean unit-variance input,
    exact: ``1 - expected masked fraction`` without rescaling; ``E[H W / kept]`` (maps with nothing
    kept count 0) with ``kept-fraction``, by enumerating the hole placements (up to
    ``enumeration_limit``: a few holes on small maps)."""
    if contract.rescale is CutoutRescale.NONE:
        return 1.0 - expected_masked_fraction(contract, n_holes, length, height, width)
    total = height * width
    counts = _masked_counts(contract, n_holes, length, height, width, enumeration_limit)
    return math.fsum(chance * total / (total - cut) for cut, chance in counts.items() if cut < total)


def reference_cutout_mask(
    contract: CutoutContract,
    shape: tuple[int, int, int, int],
    n_holes: int,
    length: int,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A boolean mask of the cut-out pixels sampled straight from the contract, one hole at a time
    by explicit slices: (N, C, H, W) for per-channel holes, (N, 1, H, W) for shared ones."""
    import torch

    check_positive_int("n_holes", n_holes)
    n, c, height, width = shape
    maps = c if contract.holes is CutoutHoles.PER_CHANNEL else 1
    rows, cols = centre_positions(contract, height, length), centre_positions(contract, width, length)
    half = patch_side(length) // 2
    ys = torch.randint(rows.start, rows.stop, (n, maps, n_holes), generator=generator).tolist()
    xs = torch.randint(cols.start, cols.stop, (n, maps, n_holes), generator=generator).tolist()
    masked = torch.zeros((n, maps, height, width), dtype=torch.bool)
    for sample, channel, hole in itertools.product(range(n), range(maps), range(n_holes)):
        y, x = ys[sample][channel][hole], xs[sample][channel][hole]
        masked[sample, channel, max(y - half, 0) : min(y + half, height), max(x - half, 0) : min(x + half, width)] = True
    return masked


def explained_by_holes(contract: CutoutContract, cut: torch.Tensor, length: int) -> torch.Tensor:
    """Whether each map of a bool mask of cut-out pixels (..., H, W) is a union of the
    contract's holes: squares of side ``2 * (length // 2)`` spanning ``c - length // 2`` to
    ``c + length // 2 - 1`` around a centre ``c`` the contract allows, cut at the border. Exact;
    shape ``cut.shape[:-2]``. A side-0 patch (``length`` 1) cuts nothing."""
    side = patch_side(length)
    if side == 0:
        return ~cut.flatten(-2).any(-1)
    regions = [centre_positions(contract, size, length) for size in cut.shape[-2:]]
    return explained_by_boxes(cut, regions, [block_extent(side, "up-left")] * 2)
