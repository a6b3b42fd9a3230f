"""Rich renderings of engine results. Pure: builds renderables, never prints."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.table import Table
from rich.text import Text

from dropblock_bench.registry import Implementation
from dropblock_bench.spec import PAPER_CONTRACT

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
