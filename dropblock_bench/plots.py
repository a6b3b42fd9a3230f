"""Figures for reports (matplotlib, an optional extra: ``pip install 'dropblock-bench[plots]'``).

Each function returns a matplotlib Figure; :mod:`dropblock_bench.report` saves them. Figures
are meant to read in print and in grey too: lines differ by marker and dash as well as colour,
masks by lightness.
"""

from __future__ import annotations

import itertools
import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from dropblock_bench import spec
from dropblock_bench.errors import DbenchError
from dropblock_bench.run.records import setting_label

MODE_LABELS = {"forward": "forward", "backward": "forward+backward"}
"""What each run mode times: ``backward`` is a forward and a backward pass."""

KEPT_COLOUR = "#f6e8b1"
"""Kept units: light (pale yellow), so that they stay apart from dropped ones in grey."""
DROPPED_COLOUR = "#1f3d68"
"""Dropped units: dark (navy)."""

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
_LINESTYLES = ("-", "--", "-.", ":")


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise DbenchError("plots need matplotlib: pip install 'dropblock-bench[plots]'") from None
    return plt


def save_figure(figure: Any, path: Any, dpi: int = 110) -> None:
    """Write the figure (format from the path's suffix) and free it."""
    figure.savefig(path, dpi=dpi)
    _pyplot().close(figure)


def mode_label(mode: str) -> str:
    """What a run mode times, in words: ``forward`` or ``forward+backward``."""
    return MODE_LABELS.get(mode, mode)


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def timing_figure(cases: Sequence[Mapping[str, Any]], mode: str, subtitle: str = "") -> Any:
    """Median time (log scale, with the 95% interval of the median as error bars) and ratio to
    the memory floor, per shape (and dtype, when the run has several) and implementation.
    Titled by what the mode times, then ``subtitle`` (e.g. the run's machine and date)."""
    plt = _pyplot()
    rows = [c for c in cases if c["status"] == "ok" and c["mode"] == mode and not c.get("inplace")]
    several_dtypes = len({c["dtype"] for c in rows}) > 1
    several_devices = len({c["device"] for c in rows}) > 1

    def group(c: Mapping[str, Any]) -> str:
        dtype = f"{c['dtype']} " if several_dtypes else ""
        device = f"{c['device']} " if several_devices else ""
        return f"{c['shape']}\n{device}{dtype}{setting_label(c)}"

    shapes = list(dict.fromkeys(group(c) for c in rows))
    names = list(dict.fromkeys(c["implementation"] for c in rows))
    figure, (left, right) = plt.subplots(1, 2, figsize=(max(12.0, 1.6 * len(shapes)), 4.8))
    width = 0.8 / max(len(names), 1)
    for index, name in enumerate(names):
        by_shape = {group(c): c for c in rows if c["implementation"] == name}
        drawn = [by_shape[s] for s in shapes if s in by_shape]
        xs = [i + index * width for i, s in enumerate(shapes) if s in by_shape]
        medians = [_number(c["median_ms"]) for c in drawn]
        # The interval may be missing (older files): no bar then, rather than a wrong one.
        below = [m - _number(c.get("ci_low_ms")) for m, c in zip(medians, drawn)]
        above = [_number(c.get("ci_high_ms")) - m for m, c in zip(medians, drawn)]
        left.bar(xs, medians, width, label=name, yerr=[below, above], capsize=2, error_kw={"elinewidth": 0.8})
        right.bar(xs, [_number(c.get("floor_ratio")) for c in drawn], width, label=name)
    titles = ((left, "median time (ms, log scale); bars: 95% interval"), (right, "time / memory floor (x * c)"))
    for axis, title in titles:
        rotation = 90 if several_dtypes or several_devices else 0
        axis.set_xticks([i + 0.4 - width / 2 for i in range(len(shapes))], shapes, fontsize=8, rotation=rotation)
        axis.set_title(title, fontsize=10)
        axis.grid(axis="y", alpha=0.3)
    left.set_yscale("log")
    right.axhline(1.0, color="black", linewidth=0.8)
    right.set_yscale("log")
    # Below the axes, where it hides no bar.
    ncol = min(len(names), 4 if figure.get_figwidth() < 16 else 8) or 1
    figure.legend(*left.get_legend_handles_labels(), loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    figure.suptitle(f"time per call: {mode_label(mode)}" + (f"\n{subtitle}" if subtitle else ""), fontsize=11)
    legend_rows = -(-len(names) // ncol)
    figure.tight_layout(rect=(0, (0.1 + 0.2 * legend_rows) / figure.get_figheight(), 1, 1))
    return figure


def drop_rate_figure(
    contracts: Mapping[str, spec.Contract],
    observed: Mapping[str, Sequence[tuple[int, float]]],
    p: float = 0.1,
    block_size: int = 7,
    sizes: Sequence[int] = tuple(range(7, 57)),
) -> Any:
    """The drop rate each implementation delivers (its contract's exact rate: lines; verify's
    measurements: large black-edged dots) against the requested p, across square map sizes.

    Contracts with the same rate draw the same curve, so each line has its own marker and dash,
    and the markers of line ``i`` sit at every ``n``-th size starting at ``i``: where lines lie
    on each other, all their markers show.
    """
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 4.8))
    n = len(contracts)
    styles = zip(itertools.cycle(_MARKERS), itertools.cycle(_LINESTYLES))
    for index, ((name, contract), (marker, linestyle)) in enumerate(zip(contracts.items(), styles)):
        rates = [spec.expected_drop_rate(contract, p, size, size, block_size) for size in sizes]
        (line,) = axis.plot(
            sizes,
            rates,
            marker=marker,
            linestyle=linestyle,
            markersize=5,
            markevery=(index % max(n, 1), max(n, 1)),
            label=f"{name} ({contract.mask}, {contract.seeds}, {contract.gamma})",
        )
        points = observed.get(name, ())
        if points:
            axis.scatter(
                [s for s, _ in points], [r for _, r in points], s=60, marker=marker,
                color=line.get_color(), edgecolors="black", linewidths=1.0, zorder=3,
            )  # fmt: skip
    axis.axhline(p, color="black", linestyle=(0, (1, 3)), linewidth=1.2, label=f"requested p = {p:g}")
    axis.set_xlabel(f"map size H = W (block size {block_size})")
    axis.set_ylabel("fraction of units dropped")
    axis.set_title(
        "Drop rate delivered vs requested\n(lines: exact, from the contract; black-edged marks: measured by dbench verify)",
        fontsize=9,
    )
    axis.legend(fontsize=7)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def _map_panels(mask: Any) -> list[tuple[str, Any]]:
    """Each map of an (N, C, H, W) mask as (label, H x W floats, 1 = dropped), samples first."""
    import numpy as np

    samples, channels = mask.shape[0], mask.shape[1]
    panels = []
    for n in range(samples):
        for c in range(channels):
            label = f"sample {n + 1}, channel {c + 1}" if samples > 1 else f"channel {c + 1}"
            panels.append((label, np.asarray(mask[n, c], dtype=float)))
    return panels


def masks_figure(masks: Mapping[str, Any], caption: str) -> Any:
    """Sampled masks, one row per implementation, each map of each (N, C, H, W) mask in its own
    framed, gridded panel side by side: kept units light, dropped units dark (legend at the top)."""
    return panels_figure({name: _map_panels(mask) for name, mask in masks.items()}, caption)


def panels_figure(labelled_maps: Mapping[str, Sequence[tuple[str, Any]]], caption: str) -> Any:
    """:func:`masks_figure` for maps already chosen and labelled (``render.family_maps``): one
    row per implementation, each (label, H x W bool or float map) in its own panel."""
    import numpy as np

    plt = _pyplot()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    panels = {name: [(label, np.asarray(values, dtype=float)) for label, values in maps] for name, maps in labelled_maps.items()}
    columns = max((len(p) for p in panels.values()), default=1)
    rows = max(len(panels), 1)
    figure, axes = plt.subplots(rows, columns, figsize=(1.2 + 1.9 * columns, 1.0 + 2.0 * rows), squeeze=False)
    colours = ListedColormap([KEPT_COLOUR, DROPPED_COLOUR])
    for row, (name, maps) in zip(axes, panels.items()):
        for column, axis in enumerate(row):
            if column >= len(maps):
                axis.set_visible(False)
                continue
            label, values = maps[column]
            height, width = values.shape
            axis.imshow(values, cmap=colours, vmin=0, vmax=1, interpolation="nearest")
            if max(height, width) <= 64:  # a line per unit; beyond that the grid would be a grey wash
                axis.set_xticks([x - 0.5 for x in range(1, width)], minor=True)
                axis.set_yticks([y - 0.5 for y in range(1, height)], minor=True)
                axis.grid(which="minor", color="#8c8c8c", linewidth=0.3)
            axis.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
            axis.set_xticks([])
            axis.set_yticks([])
            for spine in axis.spines.values():
                spine.set_color("black")
                spine.set_linewidth(1.0)
            axis.set_title(f"{label}: {values.mean():.0%} dropped", fontsize=8)
            if column == 0:
                axis.set_ylabel(name, fontsize=10, fontweight="bold")
    legend = [Patch(facecolor=KEPT_COLOUR, edgecolor="black", label="kept"),
              Patch(facecolor=DROPPED_COLOUR, edgecolor="black", label="dropped")]  # fmt: skip
    # About 13 characters of 9-point text to the inch: the caption wraps to the figure's width.
    figure.suptitle(textwrap.fill(caption, int(13 * figure.get_figwidth()), break_on_hyphens=False), fontsize=9)
    figure.legend(handles=legend, loc="lower center", ncol=2, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.35 / figure.get_figheight(), 1, 1))
    return figure
