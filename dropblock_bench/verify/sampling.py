"""Running an implementation the way the checks need it: seeded, over many calls, in every
layout, masks extracted with the call each came from."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any

import torch

from dropblock_bench import spec
from dropblock_bench.registry import DropBlockFn, Implementation
from dropblock_bench.verify.settings import Case, Layout

UNITS_PER_CALL = 1 << 22  # bound one call's input to 16 MB of float32
MASK_CHANNELS = {spec.MaskSharing.PER_CHANNEL: 4, spec.MaskSharing.SHARED: 2}
BATCH_CYCLE = 4
"""Every ``BATCH_CYCLE``-th call has batch size 1; the others an odd batch size."""
BATCH_SHARED_CHANNELS = 16
"""Channels per call for a per-channel, batch-shared contract: its one sample's channels are all
the independent maps a call gives, so more of them means fewer calls."""


def channels_for(contract: spec.Contract) -> int:
    """Channels of the inputs a case feeds the implementation."""
    if contract.mask is spec.MaskSharing.PER_CHANNEL and contract.batch is spec.BatchSharing.SHARED:
        return BATCH_SHARED_CHANNELS
    return MASK_CHANNELS[spec.MaskSharing(contract.mask)]


def derive_seed(seed: int, *labels: object) -> int:
    """A stable 63-bit seed for one sampling step, from the run's seed and labels."""
    digest = hashlib.sha256(repr((seed, *labels)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def call_seeded(
    impl: Implementation, fn: DropBlockFn, x: torch.Tensor, p: float, block_size: int, seed: int, **kwargs: object
) -> torch.Tensor:
    """``fn(x, p, block_size, **kwargs)`` made reproducible (:func:`call_with_seed`)."""
    return call_with_seed(impl, fn, x, (p, block_size), seed, **kwargs)


def call_with_seed(impl: Implementation, fn: Any, x: torch.Tensor, arguments: tuple[float | int, ...], seed: int,
                   **kwargs: object) -> Any:  # fmt: skip
    """``fn(x, *arguments, **kwargs)`` (any family's call) made reproducible: through
    ``generator=`` where the implementation supports it, else by seeding torch's global RNG."""
    if impl.supports_generator:
        return fn(x, *arguments, generator=torch.Generator(device=x.device).manual_seed(seed), **kwargs)
    torch.manual_seed(seed)
    return fn(x, *arguments, **kwargs)


def make_input(
    shape: tuple[int, int, int, int], layout: Layout = Layout.CONTIGUOUS, device: str = "cpu", fill: float = 1.0
) -> torch.Tensor:
    """A tensor of ``shape`` (N, C, H, W) filled with ``fill``, laid out as ``layout``."""
    n, c, h, w = shape
    if layout is Layout.CHANNELS_LAST:
        return torch.full(shape, fill, device=device).contiguous(memory_format=torch.channels_last)
    if layout is Layout.STRIDED:
        return torch.full((n, c, w, h), fill, device=device).transpose(-1, -2)
    return torch.full(shape, fill, device=device)


def checked_output(x: torch.Tensor, out: object) -> torch.Tensor:
    """``out`` when it is a tensor of ``x``'s shape; else ``TypeError`` (not a tensor) or
    ``ValueError`` (another shape) saying what came back."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"returned {type(out).__name__}, not a Tensor")
    if out.shape != x.shape:
        raise ValueError(f"returned shape {tuple(out.shape)} for an input of shape {tuple(x.shape)}")
    return out


@dataclasses.dataclass
class CaseSample:
    """The maps one case drew: ``masks`` (M, H, W) bool, ``call_of_map`` (M,) the call each
    came from (0 .. calls - 1), and how many maps held NaN or infinite outputs."""

    masks: torch.Tensor
    call_of_map: torch.Tensor
    calls: int
    nonfinite_maps: int

    @property
    def maps(self) -> int:
        return self.masks.shape[0]


def maps_per_sample(contract: spec.Contract) -> int:
    """Maps one sample contributes as independent evidence: every channel's, or channel 0's
    when the contract shares a mask across channels."""
    return channels_for(contract) if contract.mask is spec.MaskSharing.PER_CHANNEL else 1


def batch_size_for(contract: spec.Contract, case: Case, maps: int, min_calls: int) -> int:
    """The odd batch size of the larger calls: enough that ``min_calls`` calls give ``maps``
    maps, within :data:`UNITS_PER_CALL`. Batch-shared contracts give one sample's maps per
    call whatever the batch, so they get a small odd batch and more calls."""
    channels = channels_for(contract)
    if contract.batch is spec.BatchSharing.SHARED:
        return 3
    wanted = math.ceil(maps / (min_calls * maps_per_sample(contract)))
    largest = max(1, UNITS_PER_CALL // (channels * case.height * case.width))
    batch = min(wanted, largest)
    if batch % 2 == 0:
        batch = batch - 1 if batch == largest else batch + 1
    return max(batch, 1)


def sample_case(
    impl: Implementation, fn: DropBlockFn, case: Case, maps: int, min_calls: int, seed: int, device: str = "cpu"
) -> CaseSample:
    """At least ``maps`` drop masks from at least ``min_calls`` separate calls.

    The input is all ones in the case's layout, so a unit counts as dropped exactly when its
    output is 0. Per-channel contracts contribute every (sample, channel) map; shared ones
    channel 0 of each sample; batch-shared ones only sample 0 of each call. Batch sizes
    alternate between an odd size and 1.
    """
    contract = impl.dropblock_contract
    channels = channels_for(contract)
    batch = batch_size_for(contract, case, maps, min_calls)
    pieces, owners, nonfinite = [], [], 0
    collected, call = 0, 0
    while collected < maps or call < min_calls:
        n = 1 if call % BATCH_CYCLE == BATCH_CYCLE - 1 else batch
        x = make_input((n, channels, case.height, case.width), case.layout, device)
        out = checked_output(x, call_seeded(impl, fn, x, case.p, case.block_size, derive_seed(seed, case.label, call)))
        out = out.detach().cpu()
        if contract.batch is spec.BatchSharing.SHARED:
            out = out[:1]
        out = out[:, :1] if contract.mask is spec.MaskSharing.SHARED else out
        maps_here = out.flatten(0, 1)
        nonfinite += int((~torch.isfinite(maps_here)).flatten(1).any(1).sum())
        pieces.append(maps_here == 0)
        owners.append(torch.full((maps_here.shape[0],), call, dtype=torch.long))
        collected += maps_here.shape[0]
        call += 1
    return CaseSample(torch.cat(pieces), torch.cat(owners), call, nonfinite)


def sample_mask(
    impl: Implementation, fn: DropBlockFn, shape: tuple[int, int, int, int], p: float, block_size: int, seed: int = 0
) -> torch.Tensor:
    """One bool drop mask of ``shape`` (N, C, H, W) from the implementation (input all ones)."""
    return sample_drop_mask(impl, fn, shape, (p, block_size), seed)


def sample_drop_mask(impl: Implementation, fn: Any, shape: tuple[int, ...], arguments: tuple[float | int, ...],
                     seed: int = 0) -> torch.Tensor:  # fmt: skip
    """One bool drop mask of ``shape`` from an implementation of any family: ``fn(ones, *arguments)``
    seeded (through ``generator=`` where supported, else torch's global RNG), zeros read as
    dropped. An output that is not a tensor of ``shape`` raises ``TypeError`` or ``ValueError``."""
    x = torch.ones(shape)
    return (checked_output(x, call_with_seed(impl, fn, x, arguments, seed)) == 0).cpu()
