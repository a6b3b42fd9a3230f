"""Deliberately broken DropBlocks: each plants one defect that `dbench verify` must catch.

Every entry of :data:`DEFECTS` pairs an implementation (declaring the contract it *claims*)
with the checks that must fail. Most are one honest-looking mistake away from correct.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from dropblock_bench.implementations import fused, paper

from dropblock_bench import spec
from dropblock_bench.registry import Implementation
from dropblock_bench.spec import PAPER_CONTRACT


@dataclasses.dataclass(frozen=True)
class PlantedDefect:
    implementation: Implementation
    breaks: frozenset[str]
    """Checks that must fail."""
    spares: frozenset[str] = frozenset()
    """Checks that must *not* fail: a diagnosis that names the wrong thing is a defect of verify."""
    reason_mentions: str = ""
    """Text every failure's reason must contain (e.g. "NaN"), where that is the diagnosis."""


def _seeds(shape, rows: range, cols: range, gamma: float, generator, device, height: int, width: int):
    """Float Bernoulli seeds on rows x cols of an (N, C, H, W) map (rows/cols may overflow; cropped)."""
    n, c = shape
    big = torch.zeros((n, c, max(height, rows.stop), max(width, cols.stop)), device=device)
    draws = torch.rand((n, c, len(rows), len(cols)), generator=generator, device=device)
    big[:, :, rows.start : rows.stop, cols.start : cols.stop] = (draws < gamma).float()
    return big[:, :, :height, :width]


def _paint(seeds: torch.Tensor, k: int, up: int) -> torch.Tensor:
    """Dilate seeds into k x k squares reaching ``up`` rows/cols above/left of each seed."""
    h, w = seeds.shape[-2:]
    padded = F.pad(seeds, (k - 1 - up, up, k - 1 - up, up))
    return F.max_pool2d(padded, k, stride=1)[..., :h, :w] > 0


def _batch_apply(x: torch.Tensor, dropped: torch.Tensor) -> torch.Tensor:
    kept = (~dropped).expand_as(x)
    scale = x.numel() / kept.sum().clamp_min(1).float()
    return torch.where(kept, x * scale, 0.0).to(x.dtype)


def _paper_variant(x, p, k, generator=None, *, gamma=None, rows=None, cols=None, up=None):
    """Algorithm 1 with optional wrong pieces (gamma: a value or an (N, C, 1, 1) tensor; seed
    rows/cols; block offset)."""
    n, c, h, w = x.shape
    kc = min(k, h, w)
    gamma = spec.gamma(PAPER_CONTRACT, p, h, w, k) if gamma is None else gamma
    rows = spec.seed_rows(PAPER_CONTRACT, h, kc) if rows is None else rows
    cols = spec.seed_rows(PAPER_CONTRACT, w, kc) if cols is None else cols
    up = (kc - 1) // 2 if up is None else up
    dropped = _paint(_seeds((n, c), rows, cols, gamma, generator, x.device, h, w), kc, up)
    return _batch_apply(x, dropped)


def _guard(fn):
    """Validation and the trivial cases, done right, so each defect stays the only defect."""

    def wrapped(x, p, block_size, *, training=True, inplace=False, generator=None):
        if not training or p == 0.0:
            return x
        if p == 1.0:
            return x.masked_fill(torch.ones((), dtype=torch.bool), 0.0)
        return fn(x, p, block_size, generator)

    wrapped.__name__ = fn.__name__
    return wrapped


# ----------------------------------------------------------------------------- the defects


def raises_on_negative_step(x, p, block_size, *, training=True, inplace=False, generator=None):
    """A blog post's idea: build a mask by strided slicing, then reverse it with a negative step
    (torch refuses: ValueError, step must be greater than zero)."""
    mask = torch.ones_like(x)
    for i in range(block_size):
        mask[:, :, i::block_size, i::block_size] = 0
    flat = mask.view(x.shape[0], x.shape[1], -1)[:, :, block_size // 2 :]
    return x * flat[:, :, ::-1].reshape(x.shape)


@_guard
def rate_ten_percent_high(x, p, k, generator):
    return fused.drop_block2d(x, min(1.0, 1.1 * p), k, generator=generator)


@_guard
def gamma_right_only_on_square_maps(x, p, k, generator):
    h = x.shape[-2]
    kc = min(k, *x.shape[-2:])
    return _paper_variant(x, p, k, generator, gamma=p * h * h / (kc**2 * (h - kc + 1) ** 2))


@_guard
def right_mean_wrong_spread(x, p, k, generator):
    """gamma jittered per map by a factor in [0.25, 1.75]: same mean seed density, wider spread."""
    jitter = 0.25 + 1.5 * torch.rand((*x.shape[:2], 1, 1), generator=generator)
    return _paper_variant(x, p, k, generator, gamma=spec.gamma(PAPER_CONTRACT, p, *x.shape[-2:], k) * jitter)


def shared_mask_declared_per_channel(x, p, block_size, *, training=True, inplace=False, generator=None):
    """fused-shared registered with the per-channel paper contract."""
    return fused.drop_block2d_shared(x, p, block_size, training=training, generator=generator)


@_guard
def seeds_at_the_border(x, p, k, generator):
    h, w = x.shape[-2:]
    return _paper_variant(x, p, k, generator, rows=range(h), cols=range(w), up=(min(k, h, w) - 1) // 2)


@_guard
def even_blocks_shifted(x, p, k, generator):
    kc = min(k, *x.shape[-2:])
    return _paper_variant(x, p, k, generator, up=kc // 2)  # one row/column too far up-left for even k


@_guard
def height_used_for_width(x, p, k, generator):
    h = x.shape[-2]
    kc = min(k, *x.shape[-2:])
    return _paper_variant(x, p, k, generator, cols=spec.seed_rows(PAPER_CONTRACT, h, kc))


@_guard
def one_mask_for_the_whole_batch(x, p, k, generator):
    first = paper.drop_block2d(torch.ones_like(x[:1]), p, k, generator=generator)
    return _batch_apply(x, (first == 0).expand_as(x))


_CACHE: dict[tuple, torch.Tensor] = {}


@_guard
def mask_cached_across_calls(x, p, k, generator):
    key = (tuple(x.shape), p, k)
    if key not in _CACHE:
        _CACHE[key] = paper.drop_block2d(torch.ones_like(x), p, k, generator=generator) == 0
    return _batch_apply(x, _CACHE[key])


@_guard
def per_sample_normalisation(x, p, k, generator):
    dropped = paper.drop_block2d(torch.ones_like(x), p, k, generator=generator) == 0
    kept = (~dropped).flatten(1).sum(1).clamp_min(1).float().view(-1, 1, 1, 1)
    return torch.where(dropped, 0.0, x * (x[0].numel() / kept))


@_guard
def dropout_scale(x, p, k, generator):
    dropped = paper.drop_block2d(torch.ones_like(x), p, k, generator=generator) == 0
    return torch.where(dropped, 0.0, x / (1 - p))


class _UnscaledGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, keep, scale):
        ctx.save_for_backward(keep)
        return x * keep * scale

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return grad * keep, None, None  # forgot the scale


@_guard
def gradient_without_scale(x, p, k, generator):
    keep = (paper.drop_block2d(torch.ones_like(x), p, k, generator=generator) != 0).to(x.dtype)
    scale = x.numel() / keep.float().sum()
    return _UnscaledGradient.apply(x, keep, scale.to(x.dtype))


@_guard
def kept_count_in_input_dtype(x, p, k, generator):
    keep = (paper.drop_block2d(torch.ones_like(x, dtype=torch.float32), p, k, generator=generator) != 0).to(x.dtype)
    return x * keep * (keep.numel() / keep.sum())  # sum in fp16 overflows past 65,504


def mutates_its_input(x, p, block_size, *, training=True, inplace=False, generator=None):
    return paper.drop_block2d(x, p, block_size, training=training, inplace=True, generator=generator)


def nan_at_p_one(x, p, block_size, *, training=True, inplace=False, generator=None):
    if not training or p == 0.0:
        return x
    keep = torch.zeros_like(x) if p == 1.0 else (paper.drop_block2d(torch.ones_like(x), p, block_size, generator=generator) != 0).to(x.dtype)
    return x * keep * (keep.numel() / keep.sum())


def ignores_training_flag(x, p, block_size, *, training=True, inplace=False, generator=None):
    return paper.drop_block2d(x, p, block_size, generator=generator)


@_guard
def independent_units_not_blocks(x, p, k, generator):
    rate = spec.expected_drop_rate(PAPER_CONTRACT, p, *x.shape[-2:], k)
    dropped = torch.rand(x.shape, generator=generator) < rate
    return _batch_apply(x, dropped)


@_guard
def blocks_short_in_one_call_of_five(x, p, k, generator):
    """In about one call of five, blocks are painted one column short (a seed paired with the
    wrong block width): an intermittent defect a single call would miss."""
    kc = min(k, *x.shape[-2:])
    if kc > 1 and float(torch.rand((), generator=generator)) < 0.2:
        h, w = x.shape[-2:]
        seeds = _seeds(x.shape[:2], spec.seed_rows(PAPER_CONTRACT, h, kc), spec.seed_rows(PAPER_CONTRACT, w, kc),
                       spec.gamma(PAPER_CONTRACT, p, h, w, k), generator, x.device, h, w)  # fmt: skip
        up = (kc - 1) // 2
        padded = F.pad(seeds, (kc - 2 - up, up, kc - 1 - up, up))
        return _batch_apply(x, F.max_pool2d(padded, (kc, kc - 1), stride=1)[..., :h, :w] > 0)
    return _paper_variant(x, p, k, generator)


@_guard
def drops_too_much_unless_contiguous(x, p, k, generator):
    """A fast path for contiguous input, and a fallback for channels_last and strided views
    that asks for 30 % more."""
    if x.is_contiguous():
        return _paper_variant(x, p, k, generator)
    return _paper_variant(x.contiguous(), min(1.0, 1.3 * p), k, generator)


@_guard
def skips_small_p(x, p, k, generator):
    """Returns the input unchanged below p = 0.05 ("too small to matter")."""
    if p < 0.05:
        return x
    return _paper_variant(x, p, k, generator)


@_guard
def gamma_from_width_only(x, p, k, generator):
    w = x.shape[-1]
    kc = min(k, *x.shape[-2:])
    return _paper_variant(x, p, k, generator, gamma=p * w * w / (kc**2 * (w - kc + 1) ** 2))


@_guard
def nan_when_the_block_fills_the_map(x, p, k, generator):
    """Divides by the kept count of the seed region, 0 when the block fills the map: NaN everywhere."""
    h, w = x.shape[-2:]
    if min(k, h, w) == min(h, w):
        return x * float("nan")
    return _paper_variant(x, p, k, generator)


def _defect(fn, breaks: set[str], contract: spec.Contract = PAPER_CONTRACT, spares: set[str] = frozenset(),
            reason_mentions: str = "", **record) -> PlantedDefect:  # fmt: skip
    implementation = Implementation(
        name=fn.__name__.replace("_", "-"),
        target=fn,
        contract=contract,
        description=(fn.__doc__ or fn.__name__).strip().splitlines()[0],
        supports_inplace=False,
        origin="tests",
        **record,
    )
    return PlantedDefect(implementation, frozenset(breaks), frozenset(spares), reason_mentions)


LAW = {"rate", "dispersion", "position", "blocks"}
STRUCTURE = {"independence.channels", "independence.samples", "independence.calls", "normalisation.mean", "normalisation.scale"}


DEFECTS: tuple[PlantedDefect, ...] = (
    _defect(raises_on_negative_step, {"api.shape", "rate", "gradient"}),
    _defect(rate_ten_percent_high, {"rate"}),
    _defect(gamma_right_only_on_square_maps, {"rate"}),
    _defect(right_mean_wrong_spread, {"dispersion"}),
    _defect(seeds_at_the_border, {"blocks", "position"}),
    _defect(even_blocks_shifted, {"blocks"}),
    _defect(height_used_for_width, {"position"}),
    _defect(shared_mask_declared_per_channel, {"independence.channels"}),
    _defect(one_mask_for_the_whole_batch, {"independence.samples"}, spares=LAW | STRUCTURE - {"independence.samples"}),
    _defect(mask_cached_across_calls, {"independence.calls"}),
    _defect(per_sample_normalisation, {"normalisation.scale"}),
    _defect(dropout_scale, {"normalisation.scale", "normalisation.mean"}),
    _defect(gradient_without_scale, {"gradient"}),
    _defect(kept_count_in_input_dtype, {"dtype.float16"}),
    _defect(mutates_its_input, {"api.mutation"}),
    _defect(nan_at_p_one, {"api.p1"}),
    _defect(ignores_training_flag, {"api.eval"}),
    _defect(independent_units_not_blocks, {"blocks"}),
    # The call-level switch makes the samples of one call dependent too: independence.samples may fire.
    _defect(blocks_short_in_one_call_of_five, {"blocks"}, spares=STRUCTURE - {"normalisation.mean", "independence.samples"}),
    _defect(drops_too_much_unless_contiguous, {"rate"}, spares=STRUCTURE),
    _defect(skips_small_p, {"rate"}, spares={"blocks"} | STRUCTURE),
    _defect(gamma_from_width_only, {"rate"}, spares={"blocks"} | STRUCTURE),
    _defect(nan_when_the_block_fills_the_map, LAW, spares=STRUCTURE, reason_mentions="NaN"),
)
LAYOUT_ONLY = "drops-too-much-unless-contiguous"
"""The defect whose failing cases must all be channels_last or strided ones."""
