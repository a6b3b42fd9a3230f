"""Files of ``dbench run``: machine metadata, Ctrl-C-safe writers, reading and merging.

Rows are written as cases finish: the CSV is appended to and flushed; the JSON is rewritten
whole through a temporary file and an atomic rename. Either way an interrupted run leaves a
valid file holding every case measured so far.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dropblock_bench import __version__
from dropblock_bench.errors import DbenchError

CSV_COLUMNS = [
    "implementation",
    "device",
    "dtype",
    "shape",
    "block_size",
    "p",
    "mode",
    "inplace",
    "median_ms",
    "iqr_ms",
    "ci_low_ms",
    "ci_high_ms",
    "n_samples",
    "floor_median_ms",
    "floor_ratio",
    "gbps",
    "peak_mem_bytes",
    "saved_bytes",
    "status",
    "reason",
]
KEY_COLUMNS = ("implementation", "device", "dtype", "shape", "block_size", "p", "mode", "inplace")
FORMAT = "dbench-run/1"


class RunFileError(DbenchError, ValueError):
    """A results file is missing, malformed, or cannot be merged."""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit(directory: Path) -> str | None:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=directory, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def _gpu() -> dict[str, Any] | None:
    import torch

    if not torch.cuda.is_available():
        return None
    driver = None
    try:
        driver = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=5
        ).stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    return {"name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(), "cuda": torch.version.cuda, "driver": driver}


def machine_meta(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a result depends on: versions, CPU, threads, GPU, git commit, time."""
    import torch

    return {
        "format": FORMAT,
        "dbench_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "gpu": _gpu(),
        "git_commit": _git_commit(Path.cwd()),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }


class CsvAppender:
    """Writes the header at once, then one flushed row per result."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("w", newline="")
        self._writer = csv.DictWriter(self._handle, fieldnames=CSV_COLUMNS)
        self._writer.writeheader()
        self._handle.flush()

    def append(self, row: dict[str, Any]) -> None:
        self._writer.writerow(row)
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


class JsonRunWriter:
    """Keeps ``{"meta": ..., "cases": [...]}`` valid on disk after every appended case."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._payload: dict[str, Any] = {"meta": meta, "cases": []}
        self._write()

    def append(self, record: dict[str, Any]) -> None:
        self._payload["cases"].append(record)
        self._write()

    def _write(self) -> None:
        temporary = self._path.with_name(self._path.name + ".tmp")
        temporary.write_text(json.dumps(self._payload, indent=1) + "\n")
        os.replace(temporary, self._path)


def case_key(record: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(record.get(column) for column in KEY_COLUMNS)


def read_json(path: Path, error: type[DbenchError] = RunFileError) -> Any:
    """The parsed content of ``path``; a missing or unparsable file raises ``error`` with one clear line."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise error(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path} is not valid JSON ({exc})") from None


def load_run(path: Path) -> dict[str, Any]:
    """A ``dbench run --json`` file, checked for the fields other commands rely on."""
    payload = read_json(path)
    if not isinstance(payload, dict) or not isinstance(payload.get("cases"), list) or "meta" not in payload:
        raise RunFileError(f"{path} is not a `dbench run --json` file (expected 'meta' and 'cases')")
    for index, record in enumerate(payload["cases"]):
        missing = [column for column in (*KEY_COLUMNS, "status") if column not in record]
        if missing:
            raise RunFileError(f"{path}: case {index} lacks {', '.join(missing)}")
    return payload


def merge_runs(paths: Sequence[Path]) -> dict[str, Any]:
    """Combine shards: cases concatenated; a case measured in two files is an error."""
    if not paths:
        raise RunFileError("nothing to merge: name at least one file")
    named_twice = [path for index, path in enumerate(paths) if Path(path).resolve() in {Path(p).resolve() for p in paths[:index]}]
    if named_twice:
        raise RunFileError(f"{named_twice[0]} is named twice; shards must not overlap")
    payloads = [load_run(path) for path in paths]
    seen: dict[tuple[Any, ...], Path] = {}
    cases = []
    for path, payload in zip(paths, payloads):
        for record in payload["cases"]:
            key = case_key(record)
            if key in seen and seen[key] == path:
                raise RunFileError(f"case {key} appears twice in {path}; keep one of them")
            if key in seen:
                raise RunFileError(f"case {key} is in both {seen[key]} and {path}; shards must not overlap")
            seen[key] = path
            cases.append(record)
    # the meta of the first shard that ran something: an empty shard records no run settings
    meta = dict(next((payload for payload in payloads if payload["cases"]), payloads[0])["meta"])
    meta["merged_from"] = [{"file": str(path), "meta": payload["meta"]} for path, payload in zip(paths, payloads)]
    return {"meta": meta, "cases": cases}
