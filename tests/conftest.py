"""Shared fixtures. The pytest-benchmark suite in tests/bench runs only when named:
``pytest tests/bench --benchmark-only``."""

from __future__ import annotations

from pathlib import Path

import pytest

from dropblock_bench.registry import Implementation, list_implementations

BENCH_DIR = Path(__file__).parent / "bench"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if BENCH_DIR in (collection_path, *collection_path.parents):
        named = [Path(arg.split("::")[0]).resolve() for arg in config.args]
        if not any(BENCH_DIR == p or BENCH_DIR in p.parents for p in named):
            return True
    return None


def builtin_implementations() -> list[Implementation]:
    """The implementations this package ships, as registered through its entry points."""
    return [impl for impl in list_implementations(family="dropblock2d") if impl.origin == "dropblock-bench"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; none is present")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
