"""Files of ``dbench run``: Ctrl-C-safe writers, reading and merging.

Rows are written as cases finish: the CSV is appended to and flushed; the JSON is rewritten
whole through a temporary file and an atomic rename. Either way an interrupted run leaves a
valid file holding every case measured so far.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dropblock_bench.errors import DbenchError
from dropblock_bench.run.records import CSV_COLUMNS, KEY_COLUMNS, CaseRecord, case_key, case_label

FORMAT = "dbench-run/1"


class RunFileError(DbenchError, ValueError):
    """A results file is missing, malformed, or cannot be merged."""


class CsvAppender:
    """Writes the header at once, then one flushed row per record (:data:`CSV_COLUMNS`)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("w", newline="")
        self._writer = csv.DictWriter(self._handle, fieldnames=CSV_COLUMNS)
        self._writer.writeheader()
        self._handle.flush()

    def append(self, record: CaseRecord) -> None:
        self._writer.writerow(record.to_dict(samples=False))
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


class JsonRunWriter:
    """Keeps ``{"meta": ..., "cases": [...]}`` valid on disk after every appended case."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._payload: dict[str, Any] = {"meta": {"format": FORMAT, **meta}, "cases": []}
        self._write()

    def append(self, record: CaseRecord) -> None:
        self._payload["cases"].append(record.to_dict())
        self._write()

    def update_meta(self, extra: dict[str, Any]) -> None:
        """Merge ``extra`` into the meta (its keys replace those present) and rewrite the file,
        e.g. what is known only once the run ends."""
        self._payload["meta"].update(extra)
        self._write()

    def close(self) -> None:
        """Nothing to release: the file is complete after every append."""

    def _write(self) -> None:
        temporary = self._path.with_name(self._path.name + ".tmp")
        temporary.write_text(json.dumps(self._payload, indent=1) + "\n")
        os.replace(temporary, self._path)


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
                raise RunFileError(f"case {case_label(record)} appears twice in {path}; keep one of them")
            if key in seen:
                raise RunFileError(f"case {case_label(record)} is in both {seen[key]} and {path}; shards must not overlap")
            seen[key] = path
            cases.append(record)
    # the meta of the first shard that ran something: an empty shard records no run settings
    meta = dict(next((payload for payload in payloads if payload["cases"]), payloads[0])["meta"])
    # What describes one shard does not describe the merge: the whole run is every shard.
    meta["shard"] = None
    meta["n_cases"] = len(cases)
    meta["merged_from"] = [{"file": str(path), "meta": payload["meta"]} for path, payload in zip(paths, payloads)]
    return {"meta": meta, "cases": cases}
