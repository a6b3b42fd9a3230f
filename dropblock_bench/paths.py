"""Checks on the files a command will write, made before any work so a mistake costs seconds.

Each raises :class:`~dropblock_bench.errors.DbenchError` with one line saying what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from dropblock_bench.errors import DbenchError

__all__ = ["check_distinct", "check_output_file", "check_output_folder"]


def check_output_file(path: Path | None, option: str) -> None:
    """Fail now, not after minutes of work, when ``path`` cannot be written (its folder is made).
    Special files (devices, pipes) are refused: outputs are replaced, not written through."""
    if path is None:
        return
    suffix = {"--csv": ".csv", "--png": ".png"}.get(option, ".json")
    if path.is_dir():
        raise DbenchError(f"{option} {path} is a folder; name a file, e.g. {path / 'out'}{suffix}")
    if path.exists() and not path.is_file():
        raise DbenchError(f"{option} {path} is not a regular file; name a file, e.g. out{suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with path.open("a"):
            pass
        if not existed:
            path.unlink()
    except OSError as exc:
        raise DbenchError(f"cannot write {option} {path}: {exc.strerror or exc}") from None


def check_distinct(paths: Mapping[str, Path | None]) -> None:
    """Refuse one file named for two roles (two outputs, or an output over an input)."""
    seen: dict[Path, str] = {}
    for role, path in paths.items():
        if path is None:
            continue
        resolved = path.resolve()
        if resolved in seen:
            raise DbenchError(f"{seen[resolved]} and {role} name the same file {path}; give each its own")
        seen[resolved] = role


def check_output_folder(path: Path, option: str) -> None:
    """Fail now when ``path`` cannot be a folder to write into (it is made if missing)."""
    if path.exists() and not path.is_dir():
        raise DbenchError(f"{option} {path} is a file; name a folder, e.g. {path.with_suffix('')}-report/")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".dbench-write-check"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise DbenchError(f"cannot write into {option} {path}: {exc.strerror or exc}") from None
