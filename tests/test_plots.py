"""The report's plots: which groups and bars a figure holds."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")


def test_timing_figure_keeps_dtypes_and_devices_apart():
    from dropblock_bench.plots import timing_figure

    def case(dtype: str, ms: float, device: str = "cpu") -> dict:
        return {"status": "ok", "mode": "forward", "inplace": False, "shape": "2x3x8x8", "block_size": 3, "p": 0.1,
                "dtype": dtype, "device": device, "implementation": "fused", "median_ms": ms, "floor_ratio": ms}

    figure = timing_figure([case("float32", 2.0), case("float16", 1.0)], "forward")
    labels = [tick.get_text() for tick in figure.axes[0].get_xticklabels()]
    assert len(labels) == 2 and "float32" in labels[0] and "float16" in labels[1]
    figure = timing_figure([case("float32", 2.0), case("float32", 1.0, "cuda")], "forward")
    labels = [tick.get_text() for tick in figure.axes[0].get_xticklabels()]
    assert len(labels) == 2 and "cpu" in labels[0] and "cuda" in labels[1]
    assert sorted(patch.get_height() for patch in figure.axes[0].patches) == [1.0, 2.0]
    single = timing_figure([case("float32", 2.0)], "forward")
    assert "float32" not in single.axes[0].get_xticklabels()[0].get_text()
