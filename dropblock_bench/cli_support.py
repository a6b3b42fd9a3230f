"""Typer plumbing of the ``dbench`` command line that is not a command: the command classes.

Kept apart so :mod:`dropblock_bench.cli` holds the commands and nothing else.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

__all__ = ["DbenchCommand", "DbenchGroup"]


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
