"""Plumbing of the ``dbench`` command line that is not a command: the command classes, how a
user error becomes one red line, the progress bar.

Kept apart so :mod:`dropblock_bench.cli` holds the commands and little else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand, TyperGroup

from dropblock_bench.errors import DbenchError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from rich.console import Console
    from rich.progress import Progress

__all__ = ["USAGE_ERROR", "DbenchCommand", "DbenchGroup", "progress_bar", "user_errors"]

USAGE_ERROR = 2


@contextlib.contextmanager
def user_errors(console: Console) -> Iterator[None]:
    """Turn domain errors, and files that cannot be read or written, into one red line on
    ``console`` and exit code 2 (no traceback)."""
    try:
        yield
    except DbenchError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(USAGE_ERROR) from None
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        console.print(f"[bold red]error:[/] cannot use{where}: {exc.strerror or exc}", highlight=False)
        raise typer.Exit(USAGE_ERROR) from None


def progress_bar(console: Console, *, with_eta: bool = False) -> Progress:
    """A transient progress bar on ``console`` (stderr): description, bar, n of m, elapsed, ETA."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    if with_eta:
        columns.append(TimeRemainingColumn())
    return Progress(*columns, console=console, transient=True)


class _HelpOptionWithoutType:
    """Lists ``--help`` without a value type: typer 0.29 shows ``<bool>`` beside it, as if it
    took a value. (Every other option names what it takes with ``metavar``; flags take "".)"""

    def get_help_option(self, ctx: typer.Context) -> Any:  # click's Option, whose module varies by typer version
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = ""
        return option


class DbenchCommand(_HelpOptionWithoutType, TyperCommand):  # type: ignore[misc]  # click types vary by typer version
    """A dbench command (see :class:`_HelpOptionWithoutType`)."""


class DbenchGroup(_HelpOptionWithoutType, TyperGroup):  # type: ignore[misc]  # click types vary by typer version
    """The dbench group (see :class:`_HelpOptionWithoutType`)."""
