"""dropblock-bench: benchmark and verify DropBlock implementations for PyTorch.

The public API is small and stable::

    from dropblock_bench import DropBlock2d, drop_block2d  # the fastest correct DropBlock
    from dropblock_bench import ScheduledDropBlock2d        # the paper's linear ramp of p
    from dropblock_bench import Contract, Implementation, list_implementations

``drop_block2d`` / ``DropBlock2d`` follow Algorithm 1 of the paper (per-channel masks);
``drop_block2d_shared`` / ``DropBlock2dShared`` share one mask across channels. Names that
need torch are imported on first use, so ``import dropblock_bench`` stays instant.
"""

from __future__ import annotations

import importlib
from typing import Any

from dropblock_bench.registry import (
    Implementation,
    get_implementation,
    list_implementations,
    register_implementation,
)
from dropblock_bench.spec import PAPER_CONTRACT, Contract

__version__ = "0.1.0"

_LAZY_EXPORTS = {
    "drop_block2d": "dropblock_bench.implementations.fused",
    "DropBlock2d": "dropblock_bench.implementations.fused",
    "drop_block2d_shared": "dropblock_bench.implementations.fused",
    "DropBlock2dShared": "dropblock_bench.implementations.fused",
    "ScheduledDropBlock2d": "dropblock_bench.schedule",
}

__all__ = [
    "PAPER_CONTRACT",
    "Contract",
    "DropBlock2d",
    "DropBlock2dShared",
    "Implementation",
    "ScheduledDropBlock2d",
    "__version__",
    "drop_block2d",
    "drop_block2d_shared",
    "get_implementation",
    "list_implementations",
    "register_implementation",
]


def __getattr__(name: str) -> Any:
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dropblock_bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
