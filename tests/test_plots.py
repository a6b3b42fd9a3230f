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


def _case(implementation: str, median: float, mode: str = "forward", **fields) -> dict:
    return {"status": "ok", "mode": mode, "inplace": False, "shape": "2x3x8x8", "block_size": 3, "p": 0.1,
            "dtype": "float32", "device": "cpu", "implementation": implementation, "median_ms": median,
            "ci_low_ms": median * 0.8, "ci_high_ms": median * 1.5, "floor_ratio": median, **fields}  # fmt: skip


@pytest.mark.parametrize(("mode", "label"), [("forward", "forward"), ("backward", "forward+backward")])
def test_timing_figure_is_titled_by_what_its_mode_times(mode, label):
    from dropblock_bench.plots import timing_figure

    figure = timing_figure([_case("fused", 2.0, mode)], mode, subtitle="AMD EPYC, 2026-11-23")
    first, second = figure._suptitle.get_text().split("\n")
    assert first == f"time per call: {label}" and second == "AMD EPYC, 2026-11-23"


def test_timing_figure_draws_the_interval_of_each_median_as_error_bars():
    from matplotlib.container import ErrorbarContainer

    from dropblock_bench.plots import timing_figure

    figure = timing_figure([_case("fused", 2.0), _case("paper", 10.0), _case("old", 4.0, ci_low_ms=None, ci_high_ms=None)], "forward")
    bars = [c for c in figure.axes[0].containers if isinstance(c, ErrorbarContainer)]
    spans = [[tuple(segment[:, 1]) for segment in bar.lines[2][0].get_segments() if len(segment)] for bar in bars]
    # From ci_low_ms to ci_high_ms; a case without an interval (an older file) gets no bar rather than a made-up one.
    assert spans == [[(1.6, 3.0)], [(8.0, 15.0)], []]


def test_drop_rate_lines_that_coincide_still_show_each_one():
    from dropblock_bench.plots import drop_rate_figure
    from dropblock_bench.spec import PAPER_CONTRACT, Contract

    contracts = {"paper": PAPER_CONTRACT, "fused": PAPER_CONTRACT, "blog": Contract(mask="shared", seeds="anywhere", gamma="naive")}
    figure = drop_rate_figure(contracts, {"fused": [(14, 0.09)]}, sizes=range(7, 31))
    lines = {line.get_label().split()[0]: line for line in figure.axes[0].get_lines() if not line.get_label().startswith("requested")}
    assert list(lines) == ["paper", "fused", "blog"]
    assert len({line.get_marker() for line in lines.values()}) == 3
    assert len({line.get_linestyle() for line in lines.values()}) == 3
    # paper and fused draw the same curve; their markers sit at different sizes, so both show.
    paper, fused = (lines[name] for name in ("paper", "fused"))
    assert list(paper.get_ydata()) == list(fused.get_ydata())
    marked = [set(range(line.get_markevery()[0], len(line.get_xdata()), line.get_markevery()[1])) for line in (paper, fused)]
    assert marked[0] and marked[1] and not marked[0] & marked[1]


def _grey(colour) -> float:
    red, green, blue = colour[:3]
    return 0.299 * red + 0.587 * green + 0.114 * blue


def test_masks_are_framed_gridded_and_tell_kept_from_dropped_in_grey_too():
    import torch

    from dropblock_bench.plots import masks_figure

    mask = torch.zeros(2, 3, 6, 8, dtype=torch.bool)
    mask[0, 1, 2:4, 3:5] = True
    figure = masks_figure({"fused": mask[:1], "paper": mask}, "caption")
    grid = [axis for axis in figure.axes if axis.get_visible()]
    assert len(grid) == 3 + 6  # every map of every mask side by side: 1x3 for fused, 2x3 for paper
    hidden = [axis for axis in figure.axes if not axis.get_visible()]
    assert len(hidden) == 3  # fused's row is shorter
    panel = grid[1]
    assert panel.axison and all(spine.get_visible() for spine in panel.spines.values())
    # a grid line between every two units
    assert list(panel.get_xticks(minor=True)) == [x + 0.5 for x in range(7)] and len(panel.get_yticks(minor=True)) == 5
    assert all(tick.gridline.get_visible() for tick in panel.xaxis.get_minor_ticks() + panel.yaxis.get_minor_ticks())
    (image,) = panel.get_images()
    assert (image.get_array() == mask[0, 1].float().numpy()).all()
    kept, dropped = image.cmap(image.norm(0.0)), image.cmap(image.norm(1.0))
    assert _grey(kept) - _grey(dropped) > 0.5  # apart in grey, not only in hue
    assert panel.get_title() == "channel 2: 8% dropped"
    assert grid[0].get_ylabel() == "fused" and grid[3].get_ylabel() == "paper"
    assert "sample 2, channel 3" in grid[-1].get_title()
    (legend,) = figure.legends
    labels = {text.get_text(): patch.get_facecolor() for text, patch in zip(legend.get_texts(), legend.get_patches())}
    assert labels == {"kept": kept, "dropped": dropped}
