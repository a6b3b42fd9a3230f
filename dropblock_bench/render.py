"""Rich renderings of engine results. Pure: builds renderables, never prints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from dropblock_bench.families.catalog import DROPBLOCK2D, contract_fields
from dropblock_bench.registry import Implementation
from dropblock_bench.spec import PAPER_CONTRACT

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

    from dropblock_bench.compare import Comparison
    from dropblock_bench.run.records import CaseRecord
    from dropblock_bench.verify.results import ImplementationReport

_DTYPE_SHORT = {"float32": "fp32", "float64": "fp64", "float16": "fp16", "bfloat16": "bf16"}


def implementations_table(
    implementations: Sequence[Implementation], title: str = "DropBlock implementations", width: int | None = None
) -> ImplementationsTable:
    """One entry per implementation: its name and contract (fields departing from the paper in
    yellow, marked ``*``) on one line, with devices, supports and dtypes as columns while they
    fit, and below it the description, any other departure and the columns that did not fit.

    Laid out for ``width`` columns, or for the width it is printed at when ``width`` is None.
    Contract values are never cut: below about 60 columns the entries are stacked instead.
    """
    return ImplementationsTable(implementations, title, width)


_OPTIONAL_COLUMNS = ("devices", "supports", "dtypes")
"""Shown as columns while they fit, in this order of priority; otherwise under the description."""


class ImplementationsTable:
    """``dbench list``'s table (see :func:`implementations_table`), a rich renderable."""

    def __init__(self, implementations: Sequence[Implementation], title: str, width: int | None = None) -> None:
        self.implementations = list(implementations)
        self.title = title
        self.width = width
        families = sorted({impl.family for impl in self.implementations})
        if len(families) > 1:
            raise ValueError(f"one table per family; got {', '.join(families)}")
        family = self.implementations[0].family_record if self.implementations else DROPBLOCK2D
        self.main_fields = family.main_fields
        self.caption = f"* departs from {family.reference_name}"

    def _entry(self, impl: Implementation) -> tuple[dict[str, Text], list[Text]]:
        """The cells of one implementation's line, and the lines under it."""
        departures = set(impl.departures())
        fields = contract_fields(impl.contract)
        supports = [
            label
            for label, flag in (
                ("inplace", impl.supports_inplace),
                ("generator", impl.supports_generator),
                ("backward", impl.supports_backward),
            )
            if flag
        ]
        cells = {"implementation": Text(impl.name, style="bold cyan")}
        for field in self.main_fields:
            cells[field] = Text(f"{fields[field]}*", style="yellow") if field in departures else Text(fields[field])
        cells["devices"] = Text(" ".join(impl.devices))
        cells["supports"] = Text(" ".join(supports) or "-")
        cells["dtypes"] = Text(" ".join(_DTYPE_SHORT.get(d, d) for d in impl.dtypes))
        below = [Text(impl.description, style="dim")] if impl.description else []
        extra = [f"{field}={fields[field]}*" for field in fields if field not in self.main_fields and field in departures]
        if extra:
            below.append(Text("also " + ", ".join(extra), style="yellow"))
        return cells, below

    def _layout(self, width: int) -> tuple[list[str], dict[str, int]] | None:
        """The columns that fit in ``width`` and their widths; None when not even the name and
        the contract fit."""
        entries = [self._entry(impl)[0] for impl in self.implementations]
        widths = {name: max([len(name)] + [e[name].cell_len for e in entries]) for name in entries[0]}
        columns = ["implementation", *self.main_fields, *_OPTIONAL_COLUMNS]
        while True:
            if 1 + sum(widths[c] for c in columns) + 2 * (len(columns) - 1) <= width:
                return columns, widths
            dropped = next((c for c in reversed(_OPTIONAL_COLUMNS) if c in columns), None)
            if dropped is None:
                return None
            columns.remove(dropped)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = min(options.max_width, self.width or options.max_width)
        if self.implementations:
            layout = self._layout(width)
            parts = self._stacked() if layout is None else self._table(*layout)
            yield from console.render(Group(*parts), options.update_width(width))

    def _table(self, columns: list[str], widths: dict[str, int]) -> list[RenderableType]:
        """Name, contract and the optional columns that fit on one line; the rest below."""
        table_width = 1 + sum(widths[c] for c in columns) + 2 * (len(columns) - 1)
        parts: list[RenderableType] = [
            Text(self.title.center(table_width).rstrip(), style="table.title"),
            _columns_line([Text(c, style="table.header") for c in columns], [widths[c] for c in columns]),
            Text(" " + "─" * (table_width - 1)),
        ]
        rest = [name for name in _OPTIONAL_COLUMNS if name not in columns]
        for index, impl in enumerate(self.implementations):
            cells, below = self._entry(impl)
            if index:
                parts.append(Text())
            parts.append(_columns_line([cells[c] for c in columns], [widths[c] for c in columns]))
            parts += [Padding(line, (0, 0, 0, 3), expand=False) for line in below + ([_labelled(cells, rest)] if rest else [])]
        parts += [Text(), Text(self.caption.center(table_width).rstrip(), style="table.caption")]
        return parts

    def _stacked(self) -> list[RenderableType]:
        """For very narrow terminals: the name on its own line, the contract as words under it."""
        parts: list[RenderableType] = [Text(self.title, style="table.title")]
        for impl in self.implementations:
            cells, below = self._entry(impl)
            contract = Text("  ").join(Text(f"{field}=").append_text(cells[field]) for field in self.main_fields)
            parts += [Text(), Text(" ").append_text(cells["implementation"])]
            parts += [Padding(line, (0, 0, 0, 3), expand=False) for line in (contract, *below, _labelled(cells, _OPTIONAL_COLUMNS))]
        parts += [Text(), Text(self.caption, style="table.caption")]
        return parts

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(min(options.max_width, 40), options.max_width)


def _labelled(cells: dict[str, Text], names: Sequence[str]) -> Text:
    """Cells that got no column of their own, each after its name: ``devices cpu cuda · ...``."""
    return Text(" · ".join(f"{name} {cells[name]}" for name in names), style="dim")


def _columns_line(cells: Sequence[Text], widths: Sequence[int]) -> Text:
    """Cells left-aligned in columns of the given widths, two spaces apart, one space in."""
    line = Text(" ", no_wrap=True)
    for index, (cell, width) in enumerate(zip(cells, widths)):
        line.append_text(cell)
        if index < len(cells) - 1:
            line.append(" " * (width - cell.cell_len + 2))
    return line


def paper_contract_line() -> str:
    """The paper's contract in one line, for captions and help texts."""
    return f"paper contract: {PAPER_CONTRACT}"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _p_cell(value: float | None) -> str:
    if value is None:
        return ""
    return "<1e-300" if value == 0.0 else f"{value:.2g}"


VERIFY_LEGEND = (
    "rate: mean drop rate (z-test, exact variance) · dispersion: sd of per-map drop counts "
    "(chi-square vs the exact sampler) · position: worst position's drop frequency (binomial, "
    "Bonferroni) · blocks: maps not made of whole blocks · independence: r of paired drop counts · "
    "expected: under its own contract; paper: under Algorithm 1; p: Holm-adjusted"
)


def verify_table(report: ImplementationReport, *, show_statistic: bool = True) -> Table:
    """Every check of one implementation, grouped by case: statistic (optional, for wide
    terminals), expected, observed, paper, p, verdict."""
    status = "[green]passed[/]" if report.passed else f"[red]{len(report.failures)} failed[/]"
    table = Table(
        title=f"[bold]{report.implementation}[/]: {status} ({report.duration_s:.1f} s)",
        caption=VERIFY_LEGEND,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("check", no_wrap=True)
    if show_statistic:
        table.add_column("statistic", style="dim", no_wrap=True)
    for column in ("expected", "observed", "paper", "p"):
        table.add_column(column, overflow="fold", justify="right")
    table.add_column("verdict", no_wrap=True)
    styles = VERDICT_STYLES
    current_case = None
    for check in report.checks:
        if check.case != current_case:
            current_case = check.case
            table.add_row(Text(current_case, style="bold"), end_section=False)
        verdict = str(check.verdict)
        paper = _cell(check.paper_expected) if check.paper_expected != check.expected else ""
        table.add_row(
            "  " + check.check,
            *([check.statistic] if show_statistic else []),
            _cell(check.expected),
            _cell(check.observed),
            paper,
            _p_cell(check.adjusted_p if check.adjusted_p is not None else check.p_value),
            Text(verdict.upper(), style=styles[verdict]),
            style="red" if verdict == "fail" else None,
        )
    return table


VERDICT_STYLES = {"pass": "green", "fail": "bold red", "warn": "yellow", "note": "cyan", "skip": "dim"}


def verify_lines(report: ImplementationReport, *, verbose: bool = False, width: int = 80) -> list[object]:
    """What ``dbench verify`` prints for one implementation: a summary line, every failure and
    warning and skip with its reason, the contract's departures from the paper in one line, and
    the power note. With ``verbose``: the full table first, and every note (the departures,
    case by case, with their size)."""
    from dropblock_bench.verify.results import Verdict

    counts = ", ".join(f"{report.count(v)} {v}" for v in Verdict if report.count(v))
    if report.failures:
        status = f"[bold red]FAILED[/] {len(report.failures)} check(s)"
    elif report.warnings:
        status = "[yellow]passed with warnings[/]"
    else:
        status = "[green]passed[/]"
    lines: list[object] = []
    if verbose:
        lines.append(verify_table(report, show_statistic=width >= 110))
    lines.append(f"[bold]{report.implementation}[/]: {status} [dim]({counts}; {report.duration_s:.1f} s)[/]")
    marks = {"fail": "[red]✗[/]", "warn": "[yellow]![/]", "note": "[cyan]i[/]", "skip": "[dim]-[/]"}
    for verdict in ("fail", "warn", "skip", "note") if verbose else ("fail", "warn", "skip"):
        for check in report.checks:
            if check.verdict == verdict:
                where = "" if check.case == "-" else f" [dim]{check.case}[/]"
                lines.append(f"  {marks[verdict]} {check.check}{where}: {check.reason}")
    if not verbose and report.departures_from_paper:
        fields = ", ".join(f"{field}={report.contract[field]}" for field in report.departures_from_paper)
        lines.append(f"  {marks['note']} departs from {report.reference}: {fields} [dim](--verbose: by how much, case by case)[/]")
    for note in report.notes:
        lines.append(f"  [dim]{note}[/]")
    return lines


def _ratio_style(ratio: float) -> str:
    if ratio <= 1.0 + 1e-9:
        return "bold green"
    if ratio <= 1.5:
        return "green"
    if ratio <= 3.0:
        return "yellow"
    return "red"


def _milliseconds(value: float) -> str:
    """Adaptive decimals: 1157, 86.3, 5.13, 0.757."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _megabytes(value: int | None) -> str:
    return "" if value is None else f"{value / 1e6:.1f}"


def _display_name(name: str) -> str:
    """A path/to/file.py:callable as file.py:callable (the table's column is narrow); other
    names unchanged."""
    path, colon, attribute = name.rpartition(":")
    if not (colon and path.endswith(".py")):
        return name
    file_name = path.replace("\\", "/").rpartition("/")[2]  # Windows separators too
    return f"{file_name}:{attribute}"


NOISE_MARK = "~"
"""Before the time of a case with noise flags: "about this much"."""


def run_noise_legend() -> str:
    """What the run table's ``~`` means, thresholds included (:mod:`~dropblock_bench.run.noise`)."""
    from dropblock_bench.run.noise import MAX_FLOOR_DRIFT, MAX_IQR_FRACTION

    return (
        f"{NOISE_MARK}: noisy (IQR > {MAX_IQR_FRACTION:.0%} of the median,"
        f" or the floor drifted > {MAX_FLOOR_DRIFT:g}× across rounds)"
    )


def run_table(results: Sequence[CaseRecord], title: str = "dbench run") -> Table:
    """Timing results of one family grouped by shape; each time coloured by its ratio to the
    best implementation of the same setting (as torch.utils.benchmark's Compare does), and
    marked ``~`` where the case has noise flags (the caption then says what they mean). Axes
    with a single value across the run go into the title instead of a column; the family's
    call arguments (``k=7 p=0.1``, ``p=0.1``, ``holes=1 L=16``) are one axis, ``setting``."""
    axes = {
        "mode": lambda c: {"forward": "fwd", "backward": "fwd+bwd"}[c.mode],
        "dtype": lambda c: _DTYPE_SHORT.get(c.dtype, c.dtype),
        "device": lambda c: c.device,
        "setting": lambda c: c.setting_label,
        "inplace": lambda c: "yes" if c.inplace else "",
    }
    varying = [name for name, get in axes.items() if len({get(r.case) for r in results}) > 1]
    fixed = [f"{'' if name == 'setting' else name + ' '}{axes[name](results[0].case)}"
             for name in axes if name not in varying and axes[name](results[0].case)]  # fmt: skip
    noisy = any(r.timing is not None and r.timing.noise for r in results)
    table = Table(
        title=title + (f" ({', '.join(fixed)})" if fixed else ""),
        caption="ms: median ± IQR · ×best: vs the fastest implementation of the same setting · "
        "×floor: vs x*c timed alongside · MB: peak memory above the input during one call"
        + (f" · {run_noise_legend()}" if noisy else ""),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("implementation", no_wrap=True, max_width=22, overflow="ellipsis")
    for name in varying:
        table.add_column(name, no_wrap=True)
    table.add_column("ms", justify="right", min_width=11, no_wrap=True)
    for name in ("×best", "×floor", "GB/s", "MB"):
        table.add_column(name, justify="right", no_wrap=True)
    best: dict[tuple[object, ...], float] = {}
    for r in results:
        if r.timing is not None:
            best[r.case.group] = min(best.get(r.case.group, float("inf")), r.timing.median_ms)
    names = {r.case.implementation for r in results}
    short = {name: _display_name(name) for name in names}
    clashing = {name for name in names if sum(short[name] == short[other] for other in names) > 1}
    shown = {name: name if name in clashing else short[name] for name in names}  # two files named alike keep their paths
    current_shape = None
    for r in results:
        if r.status == "ok" and r.case.shape_label != current_shape:
            current_shape = r.case.shape_label
            table.add_row(Text(current_shape, style="bold"))
        timing = r.timing
        if timing is None:
            continue  # skipped or failed: summarised by run_notes
        cells = [axes[name](r.case) for name in varying]
        ratio = timing.median_ms / best[r.case.group]
        style = _ratio_style(ratio)
        milliseconds = Text(f"{_milliseconds(timing.median_ms)} ±{_milliseconds(timing.iqr_ms)}", style=style)
        if timing.noise:  # in front, where the column's minimum width leaves room for it
            milliseconds = Text(NOISE_MARK, style="bold yellow") + milliseconds
        table.add_row(
            " " + shown[r.case.implementation],
            *cells,
            milliseconds,
            Text(f"{ratio:.2f}", style=style),
            f"{timing.floor_ratio:.2f}" if timing.floor_ratio is not None else "",
            f"{timing.gbps:.1f}" if timing.gbps is not None else "",
            _megabytes(r.memory.peak_mem_bytes if r.memory else None),
        )
    return table


def run_notes(results: Sequence[CaseRecord]) -> list[str]:
    """Rich-markup lines under the run table: errors one by one, skips counted by reason."""
    lines = [
        f"[red]error[/] {r.case.implementation} {r.case.shape_label} {r.case.mode} {r.case.dtype} {r.case.device}: {r.reason}"
        for r in results
        if r.status == "error"
    ]
    reasons: dict[str, int] = {}
    for r in results:
        if r.status == "skipped":
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
    lines += [f"[dim]skipped {count} case{'s' if count > 1 else ''}: {reason}[/]" for reason, count in reasons.items()]
    return lines


def compare_table(comparison: Comparison, base_name: str, head_name: str, *, show_interval: bool = True,
                  tool: str = "dbench compare") -> Table:  # fmt: skip
    """Base vs head per case: medians, change (with its interval on wide terminals), p, n,
    verdict (``~``: any change is below the threshold; ``inconclusive``: the replicates cannot
    tell)."""
    table = Table(
        title=f"{tool}: {base_name} → {head_name}",
        caption=f"regression: {comparison.gates}; ~: within ±{comparison.threshold * 100:g}%"
        + ("; CI: interval of the ratio" if show_interval else "")
        + (f"; evidence: {comparison.evidence}" if comparison.evidence else ""),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("case", overflow="fold", min_width=16, ratio=1)
    for name in ("base ms", "head ms", "change", *(["CI"] if show_interval else []), "p", "n"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True, min_width=len("inconclusive"))  # never cut: it is the answer
    styles = {"regression": "bold red", "improvement": "green", "~": "dim", "inconclusive": "yellow"}
    for c in comparison.cases:
        low, high = c.ratio_ci_low, c.ratio_ci_high
        ci = f"{low - 1:+.1%}..{high - 1:+.1%}" if low is not None and high is not None else ""
        case = Text(c.key)
        if c.note:  # e.g. a Welch t-test standing in for missing samples
            case.append(f"\n{c.note}", style="yellow")
        table.add_row(
            case,
            _milliseconds(c.base_median_ms),
            _milliseconds(c.head_median_ms),
            Text(f"{c.change:+.1%}", style=styles[c.verdict]),
            *([ci] if show_interval else []),
            "" if c.p_value is None else f"{c.p_value:.2g}",
            f"{c.n_base}/{c.n_head}",
            Text(c.verdict, style=styles[c.verdict]),
        )
    for verdict, style, failures in (("failing", "bold red", comparison.failing), ("still failing", "yellow", comparison.still_failing)):
        for key, reason in failures.items():
            table.add_row(Text(f"{key}\n{reason}"), "", "", "", *([""] if show_interval else []), "", "", Text(verdict, style=style))
    if comparison.geomean_ratio is not None:
        table.add_row(Text("geometric mean", style="bold"), "", "", Text(f"{comparison.geomean_ratio - 1:+.1%}", style="bold"))
    return table


def mask_text(mask: torch.Tensor, title: str, width: int = 80) -> Text:
    """A bool mask (C, H, W) as text: ``█`` dropped, ``·`` kept, each map headed by its channel
    (numbered from 1), as many maps side by side as fit in ``width`` columns and the rest in
    bands below. A map too wide at two columns a unit gets one column a unit."""
    return maps_text([(f"channel {c + 1}", mask[c]) for c in range(mask.shape[0])], title, width)


def family_maps(family: str, mask: torch.Tensor, limit: int = 8) -> list[tuple[str, torch.Tensor]]:
    """The 2-D maps of a sampled bool drop mask that show ``family``'s structure, labelled, at
    most ``limit``: DropPath's samples (each sample's trailing dimensions, rows by the last);
    DropBlock3d's first sample's first two channels, depth slice by depth slice; otherwise the
    first sample's channels (a 1-D channel as one row, more dimensions stacked in rows)."""

    def flat(unit: torch.Tensor) -> torch.Tensor:
        return unit.reshape(1, -1) if unit.dim() < 2 else unit.reshape(-1, unit.shape[-1])

    if family == "drop-path":
        return [(f"sample {n + 1}", flat(mask[n])) for n in range(min(limit, mask.shape[0]))]
    first = mask[0]
    if family == "dropblock3d":
        channels, depth = min(2, first.shape[0]), first.shape[1]
        return [(f"ch {c + 1} depth {d + 1}", first[c, d]) for c in range(channels) for d in range(depth)][:limit]
    return [(f"channel {c + 1}", flat(first[c])) for c in range(min(limit, first.shape[0]))]


def maps_text(maps: Sequence[tuple[str, torch.Tensor]], title: str, width: int = 80) -> Text:
    """Labelled bool maps (H, W) as text: ``█`` dropped, ``·`` kept, each headed by its label,
    as many side by side as fit in ``width`` columns and the rest in bands below. Maps too wide
    at two columns a unit get one column a unit."""
    map_width = max(m.shape[1] for _, m in maps)
    cell = 2 if 2 * map_width <= width else 1
    drawn_width = cell * map_width
    per_band = max(1, (width + _MAP_GAP) // (drawn_width + _MAP_GAP))
    text = Text(title + "\n", style="bold")
    for first in range(0, len(maps), per_band):
        band = maps[first : first + per_band]
        if first:
            text.append("\n")
        labels = [label if len(label) <= drawn_width else str(first + index + 1) for index, (label, _) in enumerate(band)]
        text.append((" " * _MAP_GAP).join(label.ljust(drawn_width) for label in labels).rstrip() + "\n", style="dim")
        for row in range(max(m.shape[0] for _, m in band)):
            for index, (_, values) in enumerate(band):
                if index:
                    text.append(" " * _MAP_GAP)
                for col in range(map_width):
                    if row >= values.shape[0] or col >= values.shape[1]:
                        text.append(" " * cell)
                        continue
                    dropped = bool(values[row, col])
                    text.append("█" * cell if dropped else "·".ljust(cell), style="red" if dropped else "dim")
            text.append("\n")
    text.rstrip()  # no blank line after the last row
    return text


_MAP_GAP = 3
