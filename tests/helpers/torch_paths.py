"""``fused`` and ``fused-shared`` forced onto their pure-torch path (the fallback when the C
kernel cannot be built), registered like any implementation so the same tests and the verify
engine judge them."""

from __future__ import annotations

import torch
from torch import Tensor

from dropblock_bench.implementations import fused
from dropblock_bench.implementations._common import check_arguments, output_without_sampling
from dropblock_bench.implementations.records import FUSED, FUSED_SHARED
from dropblock_bench.registry import Implementation


def fused_torch(x: Tensor, p: float, block_size: int, *, training: bool = True, inplace: bool = False,
                generator: torch.Generator | None = None) -> Tensor:
    check_arguments(x, p, block_size)
    trivial = output_without_sampling(x, p, training=training, inplace=inplace)
    return trivial if trivial is not None else fused._drop_block2d_torch(x, p, block_size, inplace, generator)


def fused_shared_torch(x: Tensor, p: float, block_size: int, *, training: bool = True, inplace: bool = False,
                       generator: torch.Generator | None = None) -> Tensor:
    check_arguments(x, p, block_size)
    trivial = output_without_sampling(x, p, training=training, inplace=inplace)
    return trivial if trivial is not None else fused._drop_block2d_shared_torch(x, p, block_size, inplace, generator)


TORCH_PATHS = [
    Implementation(name="fused[torch]", target="torch_paths:fused_torch", contract=FUSED.contract, origin="tests"),
    Implementation(name="fused-shared[torch]", target="torch_paths:fused_shared_torch", contract=FUSED_SHARED.contract,
                   origin="tests"),
]
