"""Running an implementation the way the checks need it: seeded, chunked, masks extracted."""

from __future__ import annotations

import hashlib
import math

import torch

from dropblock_bench import spec
from dropblock_bench.registry import DropBlockFn, Implementation
from dropblock_bench.verify.settings import Case

UNITS_PER_CALL = 1 << 22  # bound one call's input to 16 MB of float32
MASK_CHANNELS = {spec.MaskSharing.PER_CHANNEL: 4, spec.MaskSharing.SHARED: 2}


def derive_seed(seed: int, *labels: object) -> int:
    """A stable 63-bit seed for one sampling step, from the run's seed and labels."""
    digest = hashlib.sha256(repr((seed, *labels)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def call_seeded(
    impl: Implementation, fn: DropBlockFn, x: torch.Tensor, p: float, block_size: int, seed: int, **kwargs: object
) -> torch.Tensor:
    """``fn(x, p, block_size, **kwargs)`` made reproducible: through ``generator=`` where the
    implementation supports it, else by seeding torch's global RNG."""
    if impl.supports_generator:
        generator = torch.Generator(device=x.device).manual_seed(seed)
        return fn(x, p, block_size, generator=generator, **kwargs)
    torch.manual_seed(seed)
    return fn(x, p, block_size, **kwargs)


def sample_drop_masks(
    impl: Implementation, fn: DropBlockFn, case: Case, maps: int, seed: int, device: str = "cpu"
) -> torch.Tensor:
    """``maps`` independent bool drop masks (maps, H, W) under the implementation's declared sharing.

    The input is all ones, so a unit counts as dropped exactly when its output is 0. Per-channel
    contracts contribute every (sample, channel) map; shared ones only channel 0 of each sample.
    """
    channels = MASK_CHANNELS[impl.contract.mask]
    samples_needed = maps if impl.contract.mask is spec.MaskSharing.SHARED else math.ceil(maps / channels)
    per_call = max(1, UNITS_PER_CALL // (channels * case.height * case.width))
    pieces = []
    for index, start in enumerate(range(0, samples_needed, per_call)):
        n = min(per_call, samples_needed - start)
        x = torch.ones((n, channels, case.height, case.width), device=device)
        out = call_seeded(impl, fn, x, case.p, case.block_size, derive_seed(seed, case.label, index))
        dropped = (out == 0).cpu()
        pieces.append(dropped[:, 0] if impl.contract.mask is spec.MaskSharing.SHARED else dropped.flatten(0, 1))
    return torch.cat(pieces)[:maps]


def sample_mask(
    impl: Implementation, fn: DropBlockFn, shape: tuple[int, int, int, int], p: float, block_size: int, seed: int = 0
) -> torch.Tensor:
    """One bool drop mask of ``shape`` (N, C, H, W) from the implementation (input all ones)."""
    out = call_seeded(impl, fn, torch.ones(shape), p, block_size, seed)
    return (out == 0).cpu()
