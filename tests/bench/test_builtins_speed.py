"""pytest-benchmark suite over the registry's built-ins (kept out of the default test run).

Run: ``pytest tests/bench --benchmark-only``. Speed targets are asserted here, as ratios
measured side by side in one process, never as absolute times.
"""

from __future__ import annotations

import statistics

import pytest
import torch
from torch.utils import benchmark as torch_benchmark

from dropblock_bench.registry import get_implementation, list_implementations

BUILTIN_NAMES = [impl.name for impl in list_implementations(family="dropblock2d") if impl.origin == "dropblock-bench"]
SHAPES = [(8, 64, 56, 56), (8, 256, 14, 14), (8, 512, 7, 7)]


def _shape_id(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_forward(benchmark, name, shape):
    x = torch.randn(shape)
    fn = get_implementation(name).load()
    benchmark.extra_info.update(implementation=name, shape=_shape_id(shape), block_size=7, p=0.1)
    benchmark(fn, x, 0.1, 7)


def _interleaved_medians_ms(fns: dict[str, object], x: torch.Tensor, rounds: int = 5) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            timer = torch_benchmark.Timer("fn(x, 0.1, 7)", globals={"fn": fn, "x": x})
            samples[name].extend(t * 1e3 for t in timer.blocked_autorange(min_run_time=0.2).times)
    return {name: statistics.median(values) for name, values in samples.items()}


@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
def test_fused_is_not_slower_than_paper(benchmark, shape):
    """Issue target: ``fused`` is correct and not slower than ``paper`` (same process, interleaved)."""
    fns = {name: get_implementation(name).load() for name in ("paper", "fused", "fused-shared")}
    x = torch.randn(shape)
    medians = benchmark.pedantic(_interleaved_medians_ms, args=(fns, x), rounds=1, iterations=1)
    ratios = {name: medians[name] / medians["paper"] for name in ("fused", "fused-shared")}
    benchmark.extra_info.update(median_ms=medians, ratio_to_paper=ratios)
    assert ratios["fused"] <= 1.0, ratios
    assert ratios["fused-shared"] <= 1.0, ratios
