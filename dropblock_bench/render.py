"""Rich renderings of engine results. Pure: builds renderables, never prints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich import box
from rich.table import Table
from rich.text import Text

from dropblock_bench.registry import Implementation
from dropblock_bench.spec import PAPER_CONTRACT

if TYPE_CHECKING:  # pragma: no cover - typing only
    from dropblock_bench.verify.results import ImplementationReport

_DTYPE_SHORT = {"float32": "fp32", "float64": "fp64", "float16": "fp16", "bfloat16": "bf16"}


def implementations_table(implementations: Sequence[Implementation]) -> Table:
    """One row per implementation: name and description, its contract (fields departing
    from the paper in yellow, marked ``*``), devices, dtypes and capabilities."""
    table = Table(
        title="DropBlock implementations",
        caption="* departs from the paper (Algorithm 1)",
        show_lines=True,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("implementation", ratio=1, min_width=14)
    for field in ("mask", "seeds", "gamma", "norm"):
        table.add_column(field)
    table.add_column("devices")
    table.add_column("dtypes", min_width=4, max_width=10)
    table.add_column("supports", min_width=9, max_width=10)
    for impl in implementations:
        departures = set(impl.contract.departures_from_paper())
        contract_cells = [
            Text(f"{value}*", style="yellow") if field in departures else Text(value)
            for field, value in impl.contract.as_dict().items()
        ]
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
    styles = {"pass": "green", "fail": "bold red", "skip": "dim"}
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
