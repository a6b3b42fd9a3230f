"""The mathematics of DropBlock, in one place.

DropBlock (Ghiasi, Lin and Le, "DropBlock: A regularization method for convolutional
networks", NeurIPS 2018) drops contiguous ``block_size x block_size`` squares of a feature
map instead of independent units. Algorithm 1 of the paper:

1. sample seeds ``M_ij ~ Bernoulli(gamma)`` at the positions where a whole block fits;
2. zero the ``block_size x block_size`` square centred on every seed;
3. multiply the input by the mask and rescale by ``count(M) / count_ones(M)``.

Implementations in the wild differ in seven independent ways; a :class:`Contract` names
one choice for each, and this module gives the exact consequences of every combination:
:func:`gamma`, the seed region (:func:`seed_rows`), the block each seed paints
(:func:`block_extent`), the exact per-position drop probability
(:func:`drop_probability_map`), the exact expected drop rate
(:func:`expected_drop_rate`), the normalisation (:func:`normalisation_scale`) and a
slow, obviously correct reference sampler (:func:`reference_drop_mask`).

Implementations and the verifier both use these functions; nothing else re-derives them.

Conventions (documented once, here):

* **Anchor** (``anchor``). ``centre``, the default: a seed at row ``s`` paints rows
  ``s - (k - 1) // 2`` to ``s + k // 2`` inclusive, centred for odd ``k``; for even ``k``
  the extra row and column go to the bottom and right (what ``max_pool2d(kernel=k,
  padding=k // 2)`` followed by cropping the last row and column does). ``up-left``: the
  extra row and column of even blocks go to the top and left (cropping the first row and
  column instead). ``down-right``: the seed is the block's top-left corner, so the block
  reaches ``s`` to ``s + k - 1``. Under ``seeds="valid"`` every block lies inside the map,
  so the drop-probability map does not depend on the anchor.
* **Large blocks** (``clamp``). ``min``, the default: under ``seeds="valid"`` the block is
  clamped to the square ``min(k, H, W)`` so that at least one seed position exists; under
  ``seeds="anywhere"`` blocks keep their size ``k`` and are cut at the border; the
  ``paper`` gamma rule uses ``min(k, H, W)``. ``per-axis``: the block is the rectangle
  ``min(k, H) x min(k, W)`` under either seed region, and the ``paper`` gamma rule uses
  those two sides.
* **Batch** (``batch``). ``per-sample``, the default: every sample draws its own mask(s).
  ``shared``: one draw serves the whole batch (every sample gets the same mask).
* **p = 1** means "drop everything" for every contract: the output is all zeros. (With
  ``k > 1`` neither gamma rule reaches a certain drop, so this is a convention, not a
  consequence of gamma.)
* **Nothing kept.** When every unit of a normalisation group is dropped, its scale is 0:
  the output is zeros, never NaN or inf.

Torch is imported lazily, inside the functions that return tensors, so that reading a
contract (``dbench list``) stays instant.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import numbers
import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from collections.abc import Callable, Sequence

    import torch

__all__ = [
    "PAPER_CONTRACT",
    "Anchor",
    "BatchSharing",
    "BlockClamp",
    "Contract",
    "GammaRule",
    "MaskSharing",
    "Normalisation",
    "SeedRegion",
    "block_extent",
    "check_positive_int",
    "check_probability",
    "clamped_block_size",
    "coverage_counts",
    "drop_count_variance",
    "drop_probability_map",
    "expected_drop_rate",
    "explained_by_blocks",
    "explained_by_boxes",
    "gamma",
    "kept_scale",
    "normalisation_scale",
    "painted_block_shape",
    "painted_block_size",
    "reference_drop_mask",
    "scale_by_rule",
    "seed_rows",
    "shared_coverage_counts",
    "shifted_slices",
]


class MaskSharing(enum.StrEnum):
    """Whether each channel gets its own mask."""

    PER_CHANNEL = "per-channel"
    """One mask per sample and channel (the paper's recommendation)."""
    SHARED = "shared"
    """One mask per sample, shared by all of its channels."""


class SeedRegion(enum.StrEnum):
    """Where block seeds may fall."""

    VALID = "valid"
    """Only where the whole block fits inside the map (Algorithm 1)."""
    ANYWHERE = "anywhere"
    """At every position; blocks are cut at the border."""


class GammaRule(enum.StrEnum):
    """How the per-position seed probability gamma follows from the drop rate p."""

    PAPER = "paper"
    """``p * H * W / (k**2 * (H - k + 1) * (W - k + 1))``, ``k`` clamped to ``min(H, W)``."""
    NAIVE = "naive"
    """``p / k**2``."""


class Anchor(enum.StrEnum):
    """Where a block lies relative to its seed (matters for even blocks, or ``anywhere`` seeds)."""

    CENTRE = "centre"
    """Centred; even blocks reach one further down and right (the max-pool-and-crop-last convention)."""
    UP_LEFT = "up-left"
    """Centred; even blocks reach one further up and left (crop the first row and column)."""
    DOWN_RIGHT = "down-right"
    """The seed is the block's top-left corner: the block reaches ``k - 1`` down and right."""


class BlockClamp(enum.StrEnum):
    """How a block larger than the map is cut down."""

    MIN = "min"
    """To the square ``min(k, H, W)`` under valid seeds; unclamped (cut at the border) anywhere."""
    PER_AXIS = "per-axis"
    """To the rectangle ``min(k, H) x min(k, W)``, whatever the seed region."""


class BatchSharing(enum.StrEnum):
    """Whether the samples of one call draw their own masks."""

    PER_SAMPLE = "per-sample"
    """Every sample its own mask (the paper)."""
    SHARED = "shared"
    """One draw for the whole batch: every sample of a call gets the same mask."""


class Normalisation(enum.StrEnum):
    """How kept units are rescaled."""

    BATCH = "batch"
    """``numel / kept`` over the whole batch (Algorithm 1, step 5)."""
    SAMPLE = "sample"
    """``numel / kept`` per sample."""
    EXPECTED = "expected"
    """``1 / (1 - expected drop rate)``, a constant."""
    NONE = "none"
    """No rescaling."""


@dataclasses.dataclass(frozen=True)
class Contract:
    """What a DropBlock implementation promises: one choice per axis.

    Fields accept the enum members or their string values (``"per-channel"``,
    ``"valid"``, ...), so plugin authors may write ``Contract(mask="shared")``. The
    defaults are Algorithm 1 of the paper (with this module's conventions for even blocks
    and blocks larger than the map). ``anchor``, ``clamp`` and ``batch`` describe real code
    that the first four cannot: timm's up-left even blocks clamped per axis, a mask shared
    by the whole batch.
    """

    mask: MaskSharing | str = MaskSharing.PER_CHANNEL
    seeds: SeedRegion | str = SeedRegion.VALID
    gamma: GammaRule | str = GammaRule.PAPER
    norm: Normalisation | str = Normalisation.BATCH
    anchor: Anchor | str = Anchor.CENTRE
    clamp: BlockClamp | str = BlockClamp.MIN
    batch: BatchSharing | str = BatchSharing.PER_SAMPLE

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            enum_type = _FIELD_TYPES[field.name]
            value = getattr(self, field.name)
            try:
                coerced = enum_type(value)
            except ValueError:
                choices = ", ".join(member.value for member in enum_type)
                raise ValueError(
                    f"contract field {field.name!r} must be one of {choices}; got {value!r}"
                ) from None
            object.__setattr__(self, field.name, coerced)

    def replace(self, **changes: Any) -> Contract:
        """A copy with some fields changed; ``None`` values are ignored."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def departures_from_paper(self) -> tuple[str, ...]:
        """Names of the fields that differ from Algorithm 1, in field order."""
        return tuple(
            f.name
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(PAPER_CONTRACT, f.name)
        )

    def as_dict(self) -> dict[str, str]:
        """The contract as plain strings, e.g. for JSON: every field."""
        return {f.name: str(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def short_dict(self) -> dict[str, str]:
        """The four main fields, plus ``anchor``, ``clamp`` and ``batch`` where they are not
        the default: what a person needs to read."""
        return {
            name: value
            for name, value in self.as_dict().items()
            if name in MAIN_FIELDS or value != str(getattr(PAPER_CONTRACT, name))
        }

    def __str__(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.short_dict().items())


_FIELD_TYPES: dict[str, type[enum.StrEnum]] = {
    "mask": MaskSharing,
    "seeds": SeedRegion,
    "gamma": GammaRule,
    "norm": Normalisation,
    "anchor": Anchor,
    "clamp": BlockClamp,
    "batch": BatchSharing,
}
MAIN_FIELDS = ("mask", "seeds", "gamma", "norm")
"""The fields every listing shows; the others only where they depart from the default."""

PAPER_CONTRACT = Contract()
"""Algorithm 1: per-channel masks, valid seeds, paper gamma, batch normalisation."""


# --------------------------------------------------------------------------- geometry


def check_positive_int(name: str, value: int) -> None:
    """Raise ``ValueError`` unless ``value`` is a positive ``int`` (``bool`` is refused)."""
    if type(value) is int and value >= 1:  # the common case, without the slower ABC check
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_probability(p: float) -> None:
    """Raise ``ValueError`` unless ``p`` is a real number in [0, 1]."""
    if type(p) is float and 0.0 <= p <= 1.0:  # the common case, without the slower ABC check
        return
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"drop probability p must be a number in [0, 1], got {p!r}")


def _check_geometry(height: int, width: int, block_size: int) -> None:
    for name, value in (("height", height), ("width", width), ("block_size", block_size)):
        check_positive_int(name, value)


def clamped_block_size(height: int, width: int, block_size: int) -> int:
    """``min(block_size, height, width)``: the largest square block that fits in the map."""
    _check_geometry(height, width, block_size)
    return min(block_size, height, width)


def painted_block_shape(contract: Contract, height: int, width: int, block_size: int) -> tuple[int, int]:
    """``(rows, cols)`` of the block a seed paints, after the contract's clamp.

    ``clamp="min"``: ``min(k, H, W)`` square under ``valid`` seeds, ``k`` square (cut at the
    border) under ``anywhere`` seeds. ``clamp="per-axis"``: ``min(k, H) x min(k, W)``.
    """
    _check_geometry(height, width, block_size)
    if contract.clamp is BlockClamp.PER_AXIS:
        return min(block_size, height), min(block_size, width)
    if contract.seeds is SeedRegion.VALID:
        side = min(block_size, height, width)
        return side, side
    return block_size, block_size


def painted_block_size(contract: Contract, height: int, width: int, block_size: int) -> int:
    """The side of the square a seed paints (see :func:`painted_block_shape`); a contract
    whose block is not square here raises ``ValueError``."""
    rows, cols = painted_block_shape(contract, height, width, block_size)
    if rows != cols:
        raise ValueError(f"the block is {rows}x{cols} on a {height}x{width} map, not square; use painted_block_shape")
    return rows


def block_extent(block_size: int, anchor: Anchor | str = Anchor.CENTRE) -> tuple[int, int]:
    """``(before, after)``: a seed at ``s`` paints ``s - before`` .. ``s + after`` inclusive.

    ``centre``: ``((k - 1) // 2, k // 2)``; ``up-left``: ``(k // 2, (k - 1) // 2)``;
    ``down-right``: ``(0, k - 1)``. See the anchor convention above.
    """
    _check_geometry(1, 1, block_size)
    anchor = Anchor(anchor)
    if anchor is Anchor.UP_LEFT:
        return block_size // 2, (block_size - 1) // 2
    if anchor is Anchor.DOWN_RIGHT:
        return 0, block_size - 1
    return (block_size - 1) // 2, block_size // 2


def seed_rows(contract: Contract, size: int, block_size: int) -> range:
    """Positions along one axis of length ``size`` where a seed may fall.

    ``block_size`` is the painted size along that axis (see :func:`painted_block_shape`).
    The same function serves rows (``size = H``) and columns (``size = W``).
    """
    _check_geometry(size, 1, block_size)
    if contract.seeds is SeedRegion.ANYWHERE:
        return range(size)
    if block_size > size:
        raise ValueError(f"block_size {block_size} does not fit in size {size}; clamp it first")
    before, after = block_extent(block_size, contract.anchor)
    return range(before, size - after)


def coverage_counts(contract: Contract, size: int, block_size: int) -> list[int]:
    """For each position along one axis, how many seed positions paint it.

    The number of seeds whose block covers ``(i, j)`` is ``rows[i] * cols[j]``.
    """
    before, after = block_extent(block_size, contract.anchor)
    seeds = seed_rows(contract, size, block_size)
    # Seed s paints i iff s - before <= i <= s + after, i.e. s in [i - after, i + before].
    return [
        max(0, min(i + before, seeds.stop - 1) - max(i - after, seeds.start) + 1)
        for i in range(size)
    ]


# --------------------------------------------------------------------------- probabilities


def gamma(contract: Contract, p: float, height: int, width: int, block_size: int) -> float:
    """The Bernoulli probability of a seed at each seed position, a probability in [0, 1].

    ``paper``: ``p * H * W / (kh * kw * (H - kh + 1) * (W - kw + 1))`` where ``kh = kw =
    min(k, H, W)`` (``clamp="min"``) or ``kh = min(k, H)``, ``kw = min(k, W)``
    (``clamp="per-axis"``); this never exceeds ``p``. ``naive``: ``p / k**2``.
    """
    check_probability(p)
    _check_geometry(height, width, block_size)
    if contract.gamma is GammaRule.NAIVE:
        return p / block_size**2
    if contract.clamp is BlockClamp.PER_AXIS:
        kh, kw = min(block_size, height), min(block_size, width)
    else:
        kh = kw = clamped_block_size(height, width, block_size)
    return p * height * width / (kh * kw * (height - kh + 1) * (width - kw + 1))


def _drop_probability_rows(
    contract: Contract, p: float, height: int, width: int, block_size: int
) -> list[list[float]]:
    if p == 1.0:
        return [[1.0] * width for _ in range(height)]
    g = gamma(contract, p, height, width, block_size)
    kh, kw = painted_block_shape(contract, height, width, block_size)
    rows = coverage_counts(contract, height, kh)
    cols = coverage_counts(contract, width, kw)
    # 1 - (1 - g)**n, computed stably for small g.
    log_keep = math.log1p(-g) if g < 1.0 else -math.inf
    return [[-math.expm1(r * c * log_keep) if r * c else 0.0 for c in cols] for r in rows]


def drop_probability_map(
    contract: Contract, p: float, height: int, width: int, block_size: int
) -> torch.Tensor:
    """Exact probability that each position is dropped: a float64 tensor of shape (H, W).

    ``1 - (1 - gamma) ** n(i, j)`` where ``n(i, j)`` is the number of seed positions whose
    block covers ``(i, j)``. Identical for per-channel and shared masks, per-sample and
    batch-shared ones (sharing changes correlations between maps, not marginals). All ones
    at ``p = 1``.
    """
    import torch

    return torch.tensor(
        _drop_probability_rows(contract, p, height, width, block_size), dtype=torch.float64
    )


def expected_drop_rate(
    contract: Contract, p: float, height: int, width: int, block_size: int
) -> float:
    """Exact expected fraction of dropped units (the mean of :func:`drop_probability_map`)."""
    rows = _drop_probability_rows(contract, p, height, width, block_size)
    return math.fsum(math.fsum(row) for row in rows) / (height * width)


def shared_coverage_counts(contract: Contract, size: int, block_size: int) -> list[list[int]]:
    """``shared[i][j]``: seed positions along one axis whose block covers both ``i`` and ``j``."""
    before, after = block_extent(block_size, contract.anchor)
    seeds = seed_rows(contract, size, block_size)
    return [
        [
            max(0, min(min(i, j) + before, seeds.stop - 1) - max(max(i, j) - after, seeds.start) + 1)
            for j in range(size)
        ]
        for i in range(size)
    ]


def drop_count_variance(contract: Contract, p: float, height: int, width: int, block_size: int) -> float:
    """Exact variance of the number of dropped units in one map (units², not a rate).

    ``sum over unit pairs (u, v) of P(both kept) - P(u kept) P(v kept)``, where
    ``P(both kept) = (1 - gamma) ** (n_u + n_v - n_uv)`` and ``n_uv`` counts the seed
    positions whose block covers both units. Divide by ``(H * W) ** 2`` for the variance
    of a map's drop rate.
    """
    import torch

    if p in (0.0, 1.0):
        return 0.0
    g = gamma(contract, p, height, width, block_size)
    kh, kw = painted_block_shape(contract, height, width, block_size)
    log_keep = math.log1p(-g)
    rows = torch.tensor(coverage_counts(contract, height, kh), dtype=torch.float64)
    cols = torch.tensor(coverage_counts(contract, width, kw), dtype=torch.float64)
    covered = torch.outer(rows, cols)  # n_u, (H, W)
    shared_rows = torch.tensor(shared_coverage_counts(contract, height, kh), dtype=torch.float64)
    shared_cols = torch.tensor(shared_coverage_counts(contract, width, kw), dtype=torch.float64)
    total = 0.0
    for i in range(height):
        partners = torch.nonzero(shared_rows[i]).flatten().tolist()  # rows sharing a seed with i
        for i2 in partners:
            both = covered[i][:, None] + covered[i2][None, :]  # n_u + n_v, (W, W)
            joint = torch.exp(log_keep * (both - shared_rows[i, i2] * shared_cols))
            total += float((joint - torch.exp(log_keep * both)).sum())
    return max(total, 0.0)


# --------------------------------------------------------------------------- normalisation


def normalisation_scale(
    contract: Contract, dropped: torch.Tensor, p: float, block_size: int
) -> torch.Tensor:
    """The factor kept units are multiplied by, as a float32 tensor on ``dropped``'s device.

    ``dropped`` is the boolean drop mask of shape (N, C, H, W), or (N, 1, H, W) for a mask
    shared across channels (the ratios are the same either way). Counts are exact integers,
    never summed in half precision. Returns shape () for ``batch``, ``expected`` and
    ``none``, and (N, 1, 1, 1) for ``sample``. A group with nothing kept gets scale 0.
    """
    if dropped.dim() != 4:
        raise ValueError(f"drop mask must be 4-D (N, C, H, W), got shape {tuple(dropped.shape)}")
    return scale_by_rule(contract.norm, dropped, lambda: expected_drop_rate(contract, p, dropped.shape[-2], dropped.shape[-1], block_size))


def scale_by_rule(norm: Normalisation | str, dropped: torch.Tensor, expected_rate: Callable[[], float]) -> torch.Tensor:
    """The factor a normalisation rule multiplies kept units by, for a bool drop mask of any
    rank (dimension 0 the sample), as a float32 tensor on its device: 1 for ``none``,
    ``1 / (1 - expected_rate())`` for ``expected``, ``numel / kept`` over the batch (shape ())
    or over each sample (shape (N, 1, ..., 1)) for ``batch`` and ``sample``; 0 where nothing
    is kept. Counts are exact integers. DropBlock2d's and DropBlock3d's normalisation both."""
    import torch

    norm = Normalisation(norm)
    if norm is Normalisation.NONE:
        return torch.ones((), dtype=torch.float32, device=dropped.device)
    if norm is Normalisation.EXPECTED:
        rate = expected_rate()
        return torch.tensor(1.0 / (1.0 - rate) if rate < 1.0 else 0.0, dtype=torch.float32, device=dropped.device)
    if norm is Normalisation.BATCH:
        return kept_scale(torch.count_nonzero(dropped), dropped.numel())
    counts = torch.count_nonzero(dropped.flatten(1), dim=1).view(-1, *(1,) * (dropped.dim() - 1))
    return kept_scale(counts, dropped[0].numel())


def kept_scale(dropped_count: torch.Tensor, total: int) -> torch.Tensor:
    """``total / kept`` with ``kept = total - dropped_count``, as float32; 0 where nothing is kept.

    The count is an exact integer tensor; the division happens in float64. Elementwise the
    same value as :func:`kept_scale_of_count`.
    """
    import torch

    kept = total - dropped_count
    kept64 = kept.to(torch.float64)
    scale = torch.where(kept > 0, total / kept64.clamp_min(1.0), torch.zeros_like(kept64))
    return scale.to(torch.float32)


def kept_scale_of_count(dropped_count: int, total: int) -> float:
    """:func:`kept_scale` for one Python int count, without torch: ``total / kept`` in float64,
    rounded to the nearest float32 (returned as a Python float); 0.0 when nothing is kept."""
    kept = total - dropped_count
    if kept <= 0:
        return 0.0
    return float(struct.unpack("f", struct.pack("f", total / kept))[0])


# --------------------------------------------------------------------------- reference sampler


def reference_drop_mask(
    contract: Contract,
    shape: tuple[int, int, int, int],
    p: float,
    block_size: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """A boolean drop mask sampled straight from the contract: slow, simple, exact.

    Dense Bernoulli(gamma) seeds on the seed region, each painted as a block by explicit
    shifts (no pooling), so it shares no code path with the implementations it is used to
    check. Returns shape (N, C, H, W) for per-channel masks and (N, 1, H, W) for shared; a
    batch-shared contract draws one sample's masks and repeats them N times.
    """
    import torch

    n, c, height, width = shape
    channels = c if contract.mask is MaskSharing.PER_CHANNEL else 1
    if p == 1.0:
        return torch.ones((n, channels, height, width), dtype=torch.bool, device=device)
    draws_n = 1 if contract.batch is BatchSharing.SHARED else n
    g = gamma(contract, p, height, width, block_size)
    kh, kw = painted_block_shape(contract, height, width, block_size)
    rows, cols = seed_rows(contract, height, kh), seed_rows(contract, width, kw)
    seeds = torch.zeros((draws_n, channels, height, width), dtype=torch.bool, device=device)
    draws = torch.rand(
        (draws_n, channels, len(rows), len(cols)), generator=generator, device=device, dtype=torch.float64
    )
    seeds[:, :, rows.start : rows.stop, cols.start : cols.stop] = draws < g
    return _paint_blocks(seeds, (kh, kw), contract.anchor).expand(n, -1, -1, -1).clone()


def explained_by_blocks(
    contract: Contract, dropped: torch.Tensor, block_size: int
) -> torch.Tensor:
    """Whether each map of a bool drop mask (..., H, W) is a union of the contract's blocks.

    True for a map iff every dropped unit lies in a block (of the painted shape, placed by
    the contract's anchor, cut at the border for ``anywhere`` seeds) whose seed position is
    allowed and whose units are all dropped. Exact, no statistics. Returns a bool tensor of
    shape ``dropped.shape[:-2]``.
    """
    height, width = dropped.shape[-2:]
    kh, kw = painted_block_shape(contract, height, width, block_size)
    regions = (seed_rows(contract, height, kh), seed_rows(contract, width, kw))
    return explained_by_boxes(dropped, regions, (block_extent(kh, contract.anchor), block_extent(kw, contract.anchor)))


def explained_by_boxes(
    dropped: torch.Tensor, regions: Sequence[range], extents: Sequence[tuple[int, int]]
) -> torch.Tensor:
    """Whether each map of a bool tensor (..., *spatial) is a union of boxes: a box has a seed
    ``s`` with ``s[axis]`` in ``regions[axis]`` and spans ``s - before`` .. ``s + after``
    (``extents[axis]``) along each of the last ``len(extents)`` axes, cut at the border. Exact:
    a seed is possible where its whole (cut) box is dropped (an erosion by shifts), and the
    possible seeds' boxes must paint the map back. Returns shape ``dropped.shape[:-len(extents)]``.
    DropBlock's blocks in 2-D and 3-D and Cutout's holes are such boxes."""
    import itertools

    import torch

    sizes = dropped.shape[-len(extents) :]
    offsets = list(itertools.product(*(range(-before, after + 1) for before, after in extents)))
    possible = torch.zeros_like(dropped)
    allowed = possible
    for axis, region in enumerate(regions, start=possible.dim() - len(regions)):
        allowed = allowed.narrow(axis, region.start, len(region))
    allowed.fill_(True)
    for offset in offsets:  # seed s is possible only if unit s + offset, when inside the map, is dropped
        inside, seeds = zip(*(shifted_slices(size, shift) for size, shift in zip(sizes, offset)))
        possible[(..., *seeds)] &= dropped[(..., *inside)]
    painted = torch.zeros_like(dropped)
    for offset in offsets:  # a seed at s paints s + offset
        units, seeds = zip(*(shifted_slices(size, shift) for size, shift in zip(sizes, offset)))
        painted[(..., *units)] |= possible[(..., *seeds)]
    return (painted == dropped).flatten(-len(extents)).all(-1)


def _paint_blocks(seeds: torch.Tensor, block_shape: tuple[int, int], anchor: Anchor | str) -> torch.Tensor:
    """Paint the block of every seed of a bool tensor (..., H, W) by explicit shifts."""
    import torch

    height, width = seeds.shape[-2:]
    dropped = torch.zeros_like(seeds)
    (up, down), (left, right) = block_extent(block_shape[0], anchor), block_extent(block_shape[1], anchor)
    for dy in range(-up, down + 1):  # a seed at s paints s + dy
        for dx in range(-left, right + 1):
            dst_r, src_r = shifted_slices(height, dy)
            dst_c, src_c = shifted_slices(width, dx)
            dropped[..., dst_r, dst_c] |= seeds[..., src_r, src_c]
    return dropped


def shifted_slices(size: int, offset: int) -> tuple[slice, slice]:
    """Destination and source slices so that ``dst[i] = src[i - offset]`` stays in range."""
    if offset >= 0:
        return slice(offset, size), slice(0, max(size - offset, 0))
    return slice(0, max(size + offset, 0)), slice(-offset, size)
