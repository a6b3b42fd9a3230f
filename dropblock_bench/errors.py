"""Domain errors. The engines raise these; only the CLI turns them into a red line and an exit code."""

from __future__ import annotations


class DbenchError(Exception):
    """Base class for every error a user can cause and fix."""


class UnknownImplementationError(DbenchError, LookupError):
    """No implementation has the requested name (the message lists close matches)."""


class DuplicateImplementationError(DbenchError, ValueError):
    """Two implementations were registered under one name."""


class ImplementationLoadError(DbenchError, ImportError):
    """A plugin or a ``path/file.py:callable`` could not be loaded."""
