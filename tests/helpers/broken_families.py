"""Deliberately broken DropBlock3d, DropPath, SpatialDropout and Cutout implementations: each
plants one defect that `dbench verify` must catch for the right reason.

Every entry of :data:`FAMILY_DEFECTS` pairs an implementation (declaring the contract it
*claims*) with the checks that must fail and those that must not. :data:`FAMILY_CORRECT` holds
correct implementations in other styles than the built-ins (for the false-alarm runs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from broken_dropblocks import PlantedDefect
from dropblock_bench.implementations import cutout, drop_path, dropblock3d, spatial_dropout

from dropblock_bench import spec
from dropblock_bench.families import cutout as cutout_law
from dropblock_bench.families import dropblock3d as dropblock3d_law
from dropblock_bench.families.drop_path import DEFAULT_CONTRACT as ROW_INVERTED
from dropblock_bench.families.spatial_dropout import DEFAULT_CONTRACT as MAP_INVERTED
from dropblock_bench.registry import Implementation

__all__ = ["FAMILY_CORRECT", "FAMILY_DEFECTS"]

CUTOUT = cutout_law.DEFAULT_CONTRACT


def _record(name: str, fn, family: str, contract, **flags) -> Implementation:
    flags = {"supports_inplace": False, **flags}
    return Implementation(name=name, target=fn, contract=contract, family=family, origin="tests", **flags)


def _uniforms(shape, x, generator):
    return torch.rand(shape, generator=generator, device=x.device)


def _rows(x: torch.Tensor) -> tuple[int, ...]:
    return (x.shape[0], *(1 for _ in x.shape[1:]))


# --------------------------------------------------------------------------- drop-path


def _drop_path_variant(*, unit=_rows, keep_scale=None, swap=False, eval_factor=None, rows_filter=None):
    """DropPath with one piece wrong: the draws' shape, the kept factor, keep/drop swapped, the
    eval-mode output, or which rows may be dropped."""

    def fn(x, p, *, training=True, generator=None):
        if not training:
            return x * (eval_factor(p) if eval_factor else 1.0)
        if p == 0.0:
            return x
        draws = _uniforms(unit(x), x, generator)
        keep = draws < p if swap else draws >= p
        if rows_filter is not None:  # only the even rows drop, at twice the rate
            even = (torch.arange(x.shape[0], device=x.device) % 2 == 0).view(_rows(x))
            keep = ~(even & (draws < 2 * p))
        factor = keep_scale(p) if keep_scale else (1.0 / (1.0 - p) if p < 1.0 else 0.0)
        return torch.where(keep, x * factor, 0.0).to(x.dtype)

    return fn


def _floor_trick(x, p, *, training=True, generator=None):
    """mmcv's DropPath: ``floor(keep + u)``, ``u`` drawn in the input's dtype (NaN at p = 1, too)."""
    if not training or p == 0.0:
        return x
    keep = 1.0 - p
    mask = (keep + torch.rand(_rows(x), dtype=x.dtype, generator=generator, device=x.device)).floor()
    return x.div(keep) * mask


def _same_mask_every_call(x, p, *, training=True, generator=None):
    """Ignores its generator and re-seeds a fixed one: the same rows drop in every call."""
    return drop_path.drop_path(x, p, training=training, generator=torch.Generator().manual_seed(0))


DROP_PATH_DEFECTS = [
    PlantedDefect(_record("drop-path-scaled-by-keep-at-train", _drop_path_variant(keep_scale=lambda p: 1.0 - p), "drop-path", ROW_INVERTED),
                  frozenset({"normalisation"}), frozenset({"rate", "structure", "independence.samples", "position"}), "multiplied by"),
    PlantedDefect(_record("drop-path-batch-instead-of-row", _drop_path_variant(unit=lambda x: (1,) * x.dim()), "drop-path", ROW_INVERTED),
                  frozenset({"independence.samples", "dispersion"}), frozenset({"structure", "normalisation"})),
    PlantedDefect(_record("drop-path-per-element", _drop_path_variant(unit=lambda x: tuple(x.shape)), "drop-path", ROW_INVERTED),
                  frozenset({"structure"}), frozenset({"normalisation", "api.eval"}), "partly dropped"),
    PlantedDefect(_record("drop-path-keep-and-drop-swapped", _drop_path_variant(swap=True), "drop-path", ROW_INVERTED),
                  frozenset({"rate"}), frozenset({"structure"}), "drops"),
    PlantedDefect(_record("drop-path-bfloat16-floor-trick", _floor_trick, "drop-path", ROW_INVERTED),
                  frozenset({"dtype.bfloat16"}), frozenset({"rate", "structure", "normalisation"}), "drops"),
    PlantedDefect(_record("drop-path-eval-time-scaling-declared-inverted", _drop_path_variant(eval_factor=lambda p: 1.0 - p),
                          "drop-path", ROW_INVERTED),
                  frozenset({"api.eval"}), frozenset({"rate", "normalisation"}), "eval mode"),
    PlantedDefect(_record("drop-path-only-even-rows", _drop_path_variant(rows_filter=True), "drop-path", ROW_INVERTED),
                  frozenset({"position"}), frozenset({"structure", "normalisation"}), "position"),
    PlantedDefect(_record("drop-path-same-rows-every-call", _same_mask_every_call, "drop-path", ROW_INVERTED),
                  frozenset({"independence.calls"}), frozenset({"structure", "normalisation"})),
]


# --------------------------------------------------------------------------- spatial-dropout


def _maps_variant(*, unit=None, scale=True, rate=lambda p: p, dtype_trick=False):
    """SpatialDropout with one piece wrong."""

    def fn(x, p, *, training=True, inplace=False, generator=None):
        if not training or p == 0.0:
            return x
        shape = unit(x) if unit else (*x.shape[:2], *(1 for _ in x.shape[2:]))
        draws = _uniforms(shape, x, generator)
        if dtype_trick:
            keep = ((1.0 - p) + torch.rand(shape, dtype=x.dtype, generator=generator, device=x.device)).floor().bool()
        else:
            keep = draws >= rate(p)
        factor = (1.0 / (1.0 - p) if p < 1.0 else 0.0) if scale else 1.0
        return torch.where(keep, x * factor, 0.0).to(x.dtype)

    return fn


def _channels_last_axis(x):
    """Keras' SpatialDropout2D read on PyTorch's layout: one draw per (sample, last axis), so
    on (N, C, H, W) whole columns drop across channels instead of whole maps."""
    return (x.shape[0], *(1 for _ in x.shape[1:-1]), x.shape[-1])


def _new_tensor_for_inplace(x, p, *, training=True, inplace=False, generator=None):
    """Declares an in-place mode and returns a new tensor anyway."""
    return spatial_dropout.spatial_dropout(x, p, training=training, generator=generator)


SPATIAL_DEFECTS = [
    PlantedDefect(_record("spatial-dropout-per-sample", _maps_variant(unit=lambda x: (x.shape[0], *(1 for _ in x.shape[1:]))),
                          "spatial-dropout", MAP_INVERTED),
                  frozenset({"independence.channels"}), frozenset({"structure", "normalisation", "independence.samples"})),
    PlantedDefect(_record("spatial-dropout-per-element", _maps_variant(unit=lambda x: tuple(x.shape)), "spatial-dropout", MAP_INVERTED),
                  frozenset({"structure"}), frozenset({"normalisation"}), "partly dropped"),
    PlantedDefect(_record("spatial-dropout-unscaled", _maps_variant(scale=False), "spatial-dropout", MAP_INVERTED),
                  frozenset({"normalisation"}), frozenset({"rate", "structure"}), "multiplied by"),
    PlantedDefect(_record("spatial-dropout-half-the-rate", _maps_variant(rate=lambda p: p / 2), "spatial-dropout", MAP_INVERTED),
                  frozenset({"rate"}), frozenset({"structure", "normalisation"}), "drops"),
    PlantedDefect(_record("spatial-dropout-bfloat16-floor-trick", _maps_variant(dtype_trick=True), "spatial-dropout", MAP_INVERTED),
                  frozenset({"dtype.bfloat16"}), frozenset({"rate", "structure"}), "drops"),
    PlantedDefect(_record("spatial-dropout-channels-last-axis", _maps_variant(unit=_channels_last_axis), "spatial-dropout", MAP_INVERTED),
                  frozenset({"structure"}), frozenset({"normalisation"}), "partly dropped"),
    PlantedDefect(_record("spatial-dropout-inplace-returns-a-copy", _new_tensor_for_inplace, "spatial-dropout", MAP_INVERTED,
                          supports_inplace=True),
                  frozenset({"api.inplace"}), frozenset({"rate", "structure"}), "inplace"),
]


# --------------------------------------------------------------------------- cutout


def _cutout_from(contract, *, override_holes=None, rescale=False, centre_high=0, side=None, fits=False, mutate=False,
                 eval_cuts=False):  # fmt: skip
    """Cutout from a (possibly other) contract's reference sampler, or drawn here with one piece
    wrong: ``side(length)`` for the patch's side, centres short of the last ``centre_high``
    positions, or centres only where the patch fits (clamped to one centre when it cannot)."""

    def fn(x, n_holes, length, *, training=True, generator=None):
        if not training and not eval_cuts:
            return x
        holes = override_holes or n_holes
        if centre_high or side is not None or fits:
            n, _, h, w = x.shape
            patch = side(length) if side else cutout_law.patch_side(length)
            top, bottom = patch // 2, patch - patch // 2

            def centres(size):
                low, high = (top, max(size - bottom, top) + 1) if fits else (0, size - centre_high)
                return torch.randint(low, high, (n, holes, 1), generator=generator)

            ys, xs = centres(h), centres(w)
            rows, cols = torch.arange(h), torch.arange(w)
            in_rows = (rows >= ys - top) & (rows < ys + bottom)
            in_cols = (cols >= xs - top) & (cols < xs + bottom)
            cut = (in_rows[..., :, None] & in_cols[..., None, :]).any(dim=1)[:, None]
        else:
            cut = cutout_law.reference_cutout_mask(contract, tuple(x.shape), holes, length, generator=generator)
        out = x.masked_fill_(cut, 0.0) if mutate else x.masked_fill(cut, 0.0)
        if rescale:
            kept = (~cut).sum(dim=(-2, -1), keepdim=True).clamp(min=1)
            out = out * (cut.shape[-2] * cut.shape[-1] / kept)
        return out.to(x.dtype)

    return fn


CUTOUT_DEFECTS = [
    PlantedDefect(_record("cutout-centres-where-the-patch-fits", _cutout_from(CUTOUT, fits=True), "cutout", CUTOUT),
                  frozenset({"rate", "position"}), frozenset({"structure", "normalisation"}), "drop"),
    PlantedDefect(_record("cutout-holes-per-channel", _cutout_from(cutout_law.CutoutContract(holes="per-channel")), "cutout", CUTOUT),
                  frozenset({"structure"}), frozenset({"rate", "normalisation"}), "channels"),
    PlantedDefect(_record("cutout-rescaled", _cutout_from(CUTOUT, rescale=True), "cutout", CUTOUT),
                  frozenset({"normalisation"}), frozenset({"rate", "structure"}), "multiplied by"),
    PlantedDefect(_record("cutout-side-length-for-odd-lengths", _cutout_from(CUTOUT, side=lambda length: length), "cutout", CUTOUT),
                  frozenset({"rate"}), frozenset({"normalisation"}), "drops"),
    PlantedDefect(_record("cutout-one-hole-whatever-asked", _cutout_from(CUTOUT, override_holes=1), "cutout", CUTOUT),
                  frozenset({"rate"}), frozenset({"structure", "normalisation"}), "drops"),
    PlantedDefect(_record("cutout-centre-never-on-the-last-row", _cutout_from(CUTOUT, centre_high=1), "cutout", CUTOUT),
                  frozenset({"position"}), frozenset({"structure", "normalisation"}), "position"),
    PlantedDefect(_record("cutout-writes-into-its-input", _cutout_from(CUTOUT, mutate=True), "cutout", CUTOUT),
                  frozenset({"api.mutation"}), frozenset({"rate", "structure"}), "modified"),
    PlantedDefect(_record("cutout-cuts-in-eval-mode", _cutout_from(CUTOUT, eval_cuts=True), "cutout", CUTOUT),
                  frozenset({"api.eval"}), frozenset({"rate", "structure"}), "eval mode"),
]


# --------------------------------------------------------------------------- dropblock3d


def _dropblock3d_from(contract, *, normalise=True, flat_blocks=False, gamma_2d=False):
    """DropBlock3d from a (possibly other) contract's reference sampler, with 2-D blocks, or
    with DropBlock2d's gamma (``p HW / (k² (H - k + 1)(W - k + 1))``) for its cubes."""

    def fn(x, p, block_size, *, training=True, generator=None):
        if not training or p == 0.0:
            return x
        if gamma_2d:
            n, c, d, h, w = x.shape
            k = min(block_size, d, h, w)
            gamma = spec.gamma(spec.PAPER_CONTRACT, p, h, w, k)
            seeds = (torch.rand((n, c, d - k + 1, h - k + 1, w - k + 1), generator=generator) < gamma).float()
            dropped = F.max_pool3d(F.pad(seeds, (k - 1,) * 6), k, stride=1) > 0  # a seed is its cube's first corner
        elif flat_blocks:  # one k x k square per depth slice: the 2-D DropBlock stacked
            n, c, d, h, w = x.shape
            k = min(block_size, h, w)
            seeds = torch.zeros((n, c, d, h, w))
            gamma = spec.gamma(spec.PAPER_CONTRACT, p, h, w, block_size)
            seeds[..., (k - 1) // 2 : h - k // 2, (k - 1) // 2 : w - k // 2] = (
                torch.rand((n, c, d, h - k + 1, w - k + 1), generator=generator) < gamma).float()  # fmt: skip
            dropped = F.max_pool3d(seeds, (1, k, k), stride=1, padding=(0, k // 2, k // 2))[..., :h, :w] > 0
        else:
            dropped = dropblock3d_law.reference_drop_mask(contract, tuple(x.shape), p, block_size, generator=generator)
        kept = ~dropped
        scale = x.numel() / kept.expand_as(x).sum().clamp(min=1) if normalise else 1.0
        return torch.where(kept, x * scale, 0.0).to(x.dtype)

    return fn


PAPER = spec.PAPER_CONTRACT
DROPBLOCK3D_DEFECTS = [
    PlantedDefect(_record("dropblock3d-naive-gamma", _dropblock3d_from(PAPER.replace(gamma="naive")), "dropblock3d", PAPER),
                  frozenset({"rate"}), frozenset({"structure", "normalisation"}), "drops"),
    PlantedDefect(_record("dropblock3d-one-mask-per-sample", _dropblock3d_from(PAPER.replace(mask="shared")), "dropblock3d", PAPER),
                  frozenset({"independence.channels"}), frozenset({"structure", "normalisation", "independence.samples"})),
    PlantedDefect(_record("dropblock3d-one-mask-for-the-batch", _dropblock3d_from(PAPER.replace(batch="shared")), "dropblock3d", PAPER),
                  frozenset({"independence.samples", "dispersion"}), frozenset({"structure", "normalisation", "independence.channels"})),
    PlantedDefect(_record("dropblock3d-unnormalised", _dropblock3d_from(PAPER, normalise=False), "dropblock3d", PAPER),
                  frozenset({"normalisation"}), frozenset({"rate", "structure"}), "multiplied by"),
    PlantedDefect(_record("dropblock3d-seeds-anywhere", _dropblock3d_from(PAPER.replace(seeds="anywhere")), "dropblock3d", PAPER),
                  frozenset({"position"}), frozenset({"normalisation"}), "position"),
    PlantedDefect(_record("dropblock3d-gamma-of-dropblock2d", _dropblock3d_from(PAPER, gamma_2d=True), "dropblock3d", PAPER),
                  frozenset({"rate"}), frozenset({"structure", "normalisation"}), "drops"),
    PlantedDefect(_record("dropblock3d-flat-blocks", _dropblock3d_from(PAPER, flat_blocks=True), "dropblock3d", PAPER),
                  frozenset({"structure"}), frozenset({"normalisation"}), "blocks"),
]

FAMILY_DEFECTS = DROP_PATH_DEFECTS + SPATIAL_DEFECTS + CUTOUT_DEFECTS + DROPBLOCK3D_DEFECTS


# --------------------------------------------------------------------------- correct, other styles


def _timm_style_drop_path(x, p, *, training=True, generator=None):
    """timm's way: a Bernoulli draw of the keep probability, divided by it."""
    if not training or p == 0.0:
        return x
    keep = 1.0 - p
    mask = x.new_empty(_rows(x), dtype=torch.float32).bernoulli_(keep, generator=generator)
    return (x * (mask / keep if keep > 0 else mask)).to(x.dtype)


def _dropout2d_on_4d(x, p, *, training=True, generator=None):
    """``F.dropout2d`` where it is SpatialDropout: (N, C, H, W) inputs, seeded through torch's RNG."""
    if x.dim() != 4:
        return spatial_dropout.spatial_dropout(x, p, training=training, generator=generator)
    if generator is not None:
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
    return F.dropout2d(x, p, training=training)


FAMILY_CORRECT = [
    _record("timm-style-drop-path", _timm_style_drop_path, "drop-path", ROW_INVERTED),
    _record("dropout2d-on-4d-inputs", _dropout2d_on_4d, "spatial-dropout", MAP_INVERTED),
    _record("cutout-reference-via-a-record", cutout.cutout_reference, "cutout", CUTOUT),
    _record("dropblock3d-reference-via-a-record", dropblock3d.drop_block3d_reference, "dropblock3d", PAPER),
]
