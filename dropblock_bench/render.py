"""Rich renderings of engine results. Pure: builds renderables, never prints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich import box
from rich.table import Table
from rich.text import Text

from dropblock_bench.registry import Implementation
from dropblock_bench.spec import MAIN_FIELDS, PAPER_CONTRACT

if TYPE_CHECKING:  # pragma: no cover - typing only
    from dropblock_bench.compare import Comparison
    from dropblock_bench.timing import CaseResult
    from dropblock_bench.verify.results import ImplementationReport

_DTYPE_SHORT = {"float32": "fp32", "float64": "fp64", "float16": "fp16", "bfloat16": "bf16"}


def implementations_table(implementations: Sequence[Implementation], title: str = "DropBlock implementations") -> Table:
    """One row per implementation: name and description, its contract (fields departing
    from the paper in yellow, marked ``*``), devices, dtypes and capabilities."""
    table = Table(
        title=title,
        caption="* departs from the paper (Algorithm 1)",
        show_lines=True,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("implementation", ratio=1, min_width=14)
    for field in MAIN_FIELDS:
        table.add_column(field)
    table.add_column("devices")
    table.add_column("dtypes", min_width=4, max_width=10)
    table.add_column("supports", min_width=9, max_width=10)
    for impl in implementations:
        departures = set(impl.contract.departures_from_paper())
        fields = impl.contract.as_dict()
        contract_cells = [
            Text(f"{fields[field]}*", style="yellow") if field in departures else Text(fields[field]) for field in MAIN_FIELDS
        ]
        extra = [f"{field}={fields[field]}*" for field in fields if field not in MAIN_FIELDS and field in departures]
        supports = [
            label
            for label, flag in (
                ("inplace", impl.supports_inplace),
                ("generator", impl.supports_generator),
                ("backward", impl.supports_backward),
            )
            if flag
        ]
        name = Text(impl.name, style="bold cyan")
        if impl.description:
            name.append("\n" + impl.description, style="dim")
        if extra:
            name.append("\nalso " + ", ".join(extra), style="yellow")
        table.add_row(
            name,
            *contract_cells,
            "\n".join(impl.devices),
            " ".join(_DTYPE_SHORT.get(d, d) for d in impl.dtypes),
            " ".join(supports) or "-",
        )
    return table


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
    """What ``dbench verify`` prints for one implementation: a summary line, then every
    failure, warning, note and skip with its reason (with ``verbose``, the full table first)."""
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
    for verdict in ("fail", "warn", "note", "skip"):
        for check in report.checks:
            if check.verdict == verdict:
                where = "" if check.case == "-" else f" [dim]{check.case}[/]"
                lines.append(f"  {marks[verdict]} {check.check}{where}: {check.reason}")
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


def run_table(results: Sequence[CaseResult]) -> Table:
    """Timing results grouped by shape; each time coloured by its ratio to the best
    implementation of the same setting (as torch.utils.benchmark's Compare does). Axes with a
    single value across the run go into the title instead of a column."""
    axes = {
        "mode": lambda c: {"forward": "fwd", "backward": "fwd+bwd"}[c.mode],
        "dtype": lambda c: _DTYPE_SHORT.get(c.dtype, c.dtype),
        "device": lambda c: c.device,
        "k": lambda c: str(c.block_size),
        "p": lambda c: f"{c.p:g}",
        "inplace": lambda c: "yes" if c.inplace else "",
    }
    varying = [name for name, get in axes.items() if len({get(r.case) for r in results}) > 1]
    fixed = [f"{name} {axes[name](results[0].case)}" for name in axes if name not in varying and axes[name](results[0].case)]
    table = Table(
        title="dbench run" + (f" ({', '.join(fixed)})" if fixed else ""),
        caption="ms: median ± IQR · ×best: vs the fastest implementation of the same setting · "
        "×floor: vs x*c timed alongside · MB: peak memory above the input during one call",
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
        if r.status == "ok" and r.median_ms is not None:
            best[r.case.group] = min(best.get(r.case.group, float("inf")), r.median_ms)
    names = {r.case.implementation for r in results}
    short = {name: _display_name(name) for name in names}
    clashing = {name for name in names if sum(short[name] == short[other] for other in names) > 1}
    shown = {name: name if name in clashing else short[name] for name in names}  # two files named alike keep their paths
    current_shape = None
    for r in results:
        if r.status == "ok" and r.case.shape_label != current_shape:
            current_shape = r.case.shape_label
            table.add_row(Text(current_shape, style="bold"))
        if r.status != "ok":
            continue  # summarised by run_notes
        cells = [axes[name](r.case) for name in varying]
        ratio = r.median_ms / best[r.case.group]
        style = _ratio_style(ratio)
        table.add_row(
            " " + shown[r.case.implementation],
            *cells,
            Text(f"{_milliseconds(r.median_ms)} ±{_milliseconds(r.iqr_ms)}", style=style),
            Text(f"{ratio:.2f}", style=style),
            f"{r.floor_ratio:.2f}" if r.floor_ratio is not None else "",
            f"{r.gbps:.1f}" if r.gbps is not None else "",
            _megabytes(r.peak_mem_bytes),
        )
    return table


def run_notes(results: Sequence[CaseResult]) -> list[str]:
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


def compare_table(comparison: Comparison, base_name: str, head_name: str, *, show_interval: bool = True) -> Table:
    """Base vs head per case: medians, change (with its interval on wide terminals), p, n,
    verdict (``~`` for noise)."""
    table = Table(
        title=f"dbench compare: {base_name} → {head_name}",
        caption=f"regression: {comparison.gates}; ~: no significant change"
        + ("; CI: bootstrap interval of the median ratio" if show_interval else ""),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("case", overflow="fold", min_width=24, ratio=1)
    for name in ("base ms", "head ms", "change", *(["CI"] if show_interval else []), "p", "n"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    styles = {"regression": "bold red", "improvement": "green", "~": "dim"}
    for c in comparison.cases:
        ci = f"{c.ratio_ci_low - 1:+.1%}..{c.ratio_ci_high - 1:+.1%}" if c.ratio_ci_low is not None else ""
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


def mask_text(mask: object, title: str) -> Text:
    """A bool mask (C, H, W) as text, channels side by side: ``█`` dropped, ``·`` kept."""
    channels, height, width = mask.shape
    text = Text(title + "\n", style="bold")
    for row in range(height):
        for channel in range(channels):
            for col in range(width):
                dropped = bool(mask[channel, row, col])
                text.append("██" if dropped else "· ", style="red" if dropped else "dim")
            text.append("   ")
        text.append("\n")
    return text
