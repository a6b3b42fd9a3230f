"""``fused`` and ``fused-shared`` forced onto their pure-torch path (the fallback when the C
kernel cannot be built), registered like any implementation so the same tests and the verify
engine judge them."""

from __future__ import annotations

import torch
from dropblock_bench.implementations import fused
from dropblock_bench.implementations.records import FUSED, FUSED_SHARED
from torch import Tensor

from dropblock_bench.registry import Implementation


def fused_torch(x: Tensor, p: float, block_size: int, *, training: bool = True, inplace: bool = False,
                generator: torch.Generator | None = None) -> Tensor:
    return fused._dispatch(x, p, block_size, shared=False, training=training, inplace=inplace, generator=generator, torch_only=True)


def fused_shared_torch(x: Tensor, p: float, block_size: int, *, training: bool = True, inplace: bool = False,
                       generator: torch.Generator | None = None) -> Tensor:
    return fused._dispatch(x, p, block_size, shared=True, training=training, inplace=inplace, generator=generator, torch_only=True)


TORCH_PATHS = [
    Implementation(name="fused[torch]", target="torch_paths:fused_torch", contract=FUSED.contract, origin="tests"),
    Implementation(name="fused-shared[torch]", target="torch_paths:fused_shared_torch", contract=FUSED_SHARED.contract,
                   origin="tests"),
]
