"""Figures for reports (matplotlib, an optional extra: ``pip install 'dropblock-bench[plots]'``).

Each function returns a matplotlib Figure; :mod:`dropblock_bench.report` saves them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dropblock_bench import spec
from dropblock_bench.errors import DbenchError


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise DbenchError("plots need matplotlib: pip install 'dropblock-bench[plots]'") from None
    return plt


def timing_figure(cases: Sequence[Mapping[str, Any]], mode: str) -> Any:
    """Median time (log scale) and ratio to the memory floor, per shape (and dtype, when the run
    has several) and implementation."""
    plt = _pyplot()
    rows = [c for c in cases if c["status"] == "ok" and c["mode"] == mode and not c.get("inplace")]
    several_dtypes = len({c["dtype"] for c in rows}) > 1
    several_devices = len({c["device"] for c in rows}) > 1

    def group(c: Mapping[str, Any]) -> str:
        dtype = f"{c['dtype']} " if several_dtypes else ""
        device = f"{c['device']} " if several_devices else ""
        return f"{c['shape']}\n{device}{dtype}k={c['block_size']} p={c['p']:g}"

    shapes = list(dict.fromkeys(group(c) for c in rows))
    names = list(dict.fromkeys(c["implementation"] for c in rows))
    figure, (left, right) = plt.subplots(1, 2, figsize=(max(12.0, 1.6 * len(shapes)), 4.5))
    width = 0.8 / max(len(names), 1)
    for index, name in enumerate(names):
        by_shape = {group(c): c for c in rows if c["implementation"] == name}
        xs = [i + index * width for i, s in enumerate(shapes) if s in by_shape]
        left.bar(xs, [by_shape[s]["median_ms"] for s in shapes if s in by_shape], width, label=name)
        right.bar(xs, [by_shape[s]["floor_ratio"] for s in shapes if s in by_shape], width, label=name)
    for axis, title in ((left, "median time (ms, log scale)"), (right, "time / memory floor (x * c)")):
        axis.set_xticks([i + 0.4 - width / 2 for i in range(len(shapes))], shapes, fontsize=8, rotation=90 if several_dtypes or several_devices else 0)
        axis.set_title(title)
        axis.grid(axis="y", alpha=0.3)
    left.set_yscale("log")
    right.axhline(1.0, color="black", linewidth=0.8)
    right.set_yscale("log")
    left.legend(fontsize=8)
    figure.suptitle(f"dbench run: {mode}")
    figure.tight_layout()
    return figure


def drop_rate_figure(
    contracts: Mapping[str, spec.Contract],
    observed: Mapping[str, Sequence[tuple[int, float]]],
    p: float = 0.1,
    block_size: int = 7,
    sizes: Sequence[int] = tuple(range(7, 57)),
) -> Any:
    """The drop rate each implementation delivers (its contract's exact rate: lines; verify's
    measurements: dots) against the requested p, across square map sizes."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for name, contract in contracts.items():
        rates = [spec.expected_drop_rate(contract, p, size, size, block_size) for size in sizes]
        (line,) = axis.plot(sizes, rates, label=f"{name} ({contract.mask}, {contract.seeds}, {contract.gamma})")
        points = observed.get(name, ())
        if points:
            axis.scatter([s for s, _ in points], [r for _, r in points], color=line.get_color(), zorder=3)
    axis.axhline(p, color="black", linestyle="--", linewidth=1, label=f"requested p = {p:g}")
    axis.set_xlabel(f"map size H = W (block size {block_size})")
    axis.set_ylabel("fraction of units dropped")
    axis.set_title("Drop rate delivered vs requested (lines: exact, from the contract; dots: measured by dbench verify)")
    axis.title.set_fontsize(9)
    axis.legend(fontsize=7)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def masks_figure(masks: Mapping[str, Any], caption: str) -> Any:
    """One sampled mask per implementation, channels side by side (black = dropped)."""
    plt = _pyplot()
    figure, axes = plt.subplots(len(masks), 1, figsize=(8, 1.6 * len(masks)), squeeze=False)
    for axis, (name, mask) in zip(axes[:, 0], masks.items()):
        channels = [mask[0, c].float().numpy() for c in range(mask.shape[1])]
        gap = [[0.5] * 1 for _ in range(mask.shape[2])]
        import numpy as np

        row = np.concatenate([part for c in channels for part in (1 - c, np.asarray(gap))][:-1], axis=1)
        axis.imshow(row, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axis.set_title(name, fontsize=9, loc="left")
        axis.set_axis_off()
    figure.suptitle(caption, fontsize=9)
    figure.tight_layout()
    return figure
