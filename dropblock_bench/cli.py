"""The ``dbench`` command line: parse, call an engine, render with rich.

Heavy imports (torch, pandas, scipy) happen inside commands, so ``dbench --help`` is instant.
User mistakes raise :class:`~dropblock_bench.errors.DbenchError`; :func:`_user_errors`
turns them into one red line and exit code 2.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Annotated, Optional

import typer
from rich.console import Console

from dropblock_bench import __version__
from dropblock_bench.errors import DbenchError

app = typer.Typer(
    name="dbench",
    help=(
        "Benchmark and verify DropBlock implementations for PyTorch.\n\n"
        "Implementations are named by registry name (see `dbench list`), a glob such as "
        "'fused*', or 'path/to/file.py:callable' for your own f(x, p, block_size)."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
console = Console()
error_console = Console(stderr=True)

USAGE_ERROR = 2


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn domain errors into one red line on stderr and exit code 2 (no traceback)."""
    try:
        yield
    except DbenchError as exc:
        error_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(USAGE_ERROR) from None


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"dbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Benchmark and verify DropBlock implementations for PyTorch."""


@app.command("list")
def list_command(
    pattern: Annotated[
        Optional[str], typer.Argument(help="Only names matching this glob, e.g. 'fused*'.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List registered implementations and the contract each declares.

    The contract says how an implementation samples and scales its mask: **mask**
    (per-channel or shared across channels), **seeds** (valid: blocks fit inside the map;
    anywhere: blocks cut at the border), **gamma** (paper formula or naive p/k²) and
    **norm** (batch, sample, expected or none). Fields that depart from the paper's
    Algorithm 1 are marked with `*`.
    """
    from dropblock_bench.registry import default_registry

    registry = default_registry()
    with _user_errors():
        implementations = registry.implementations(pattern)
    if as_json:
        payload = {
            "implementations": [impl.as_dict() for impl in implementations],
            "plugin_errors": registry.plugin_errors,
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    from dropblock_bench.render import implementations_table

    if implementations:
        console.print(implementations_table(implementations))
    else:
        console.print(f"[yellow]no implementation matches {pattern!r}[/]")
    for message in registry.plugin_errors:
        error_console.print(f"[yellow]warning:[/] {message}", highlight=False)


def main() -> None:
    """Entry point of the ``dbench`` console script."""
    app()
