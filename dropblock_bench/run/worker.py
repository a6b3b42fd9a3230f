"""The timing worker behind ``dbench ab``: a process that times rounds on request, for one pair.

``dbench worker`` speaks JSON lines: one request per line on stdin, one reply per line on
stdout (nothing else is written there; anything an implementation prints goes to stderr).
The worker announces itself first, then answers:

- ``{"op": "setup", "cases": [flat case], "threads": N|null, "malloc": "steady"|"system",
  "input_seed": S}``: load the implementations (a kernel is built or loaded here) and build the
  timers;
  replies ``{"cases": [{"status": "ok"|"skipped"|"error", "reason": ...}], "backends": {...},
  "meta": {"torch_version", "threads", "cpu"}}``.
  A flat case has the key columns of :data:`~dropblock_bench.run.records.KEY_COLUMNS`.
- ``{"op": "round", "index": R, "block_time_s": T, "active": [i, ...]|null, "floor": bool}``:
  time one round of the active cases (all when null), as ``dbench run`` times a round
  (:class:`GroupTiming`), without the floor op when ``floor`` is false, after giving every
  input a fresh place in memory behind a spacer of ``spacer_bytes`` when given
  (:meth:`GroupTiming.reseat`);
  replies ``{"cases": [{"samples_ms": [...], "floor_samples_ms": [...]} | {"status": "error",
  "reason": ...} | null]}`` (null: not timed this round).
- ``{"op": "quit"}``: exit.

A request that cannot be served gets ``{"error": "..."}`` and the worker goes on.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

from dropblock_bench import __version__
from dropblock_bench.run.records import CaseRecord, CaseStatus

PROTOCOL = "dbench-worker/1"
HELLO = {"protocol": PROTOCOL, "dbench_version": __version__}


class _Worker:
    def __init__(self) -> None:
        from dropblock_bench.run.timing import GroupTiming

        self.groups: list[GroupTiming] = []
        self.records: list[CaseRecord] = []

    def setup(self, request: dict[str, Any]) -> dict[str, Any]:
        import itertools

        import torch

        from dropblock_bench.registry import resolve_implementations
        from dropblock_bench.run.allocator import steady_glibc_malloc
        from dropblock_bench.run.timing import GroupTiming

        if request.get("threads"):
            torch.set_num_threads(int(request["threads"]))
        if request.get("malloc", "steady") == "steady":
            steady_glibc_malloc()
        cases = [CaseRecord.from_dict({**flat, "status": "ok"}).case for flat in request["cases"]]
        implementations, unknown = {}, {}
        for name in dict.fromkeys(case.implementation for case in cases):
            try:
                [implementations[name]] = resolve_implementations([name])
            except Exception as exc:  # noqa: BLE001 - reported per case
                unknown[name] = f"{type(exc).__name__}: {exc}"
        known = [case for case in cases if case.implementation in implementations]
        by_case: dict[Any, CaseRecord] = {}
        for _, group in itertools.groupby(known, key=lambda case: case.turn_group):
            timing = GroupTiming(list(group), implementations, input_seed=int(request.get("input_seed", 0)))
            self.groups.append(timing)
            by_case.update({record.case: record for record in timing.records})
        self.records = [by_case.get(case) or CaseRecord(case, CaseStatus.ERROR, unknown[case.implementation]) for case in cases]
        backends = {name: status for name, impl in implementations.items() if (status := impl.backend_status())}
        from dropblock_bench.metadata import machine_meta

        meta = machine_meta()
        conditions = {key: meta[key] for key in ("torch_version", "threads", "cpu")}
        return {"cases": [{"status": str(r.status), "reason": r.reason} for r in self.records], "backends": backends,
                "meta": conditions}  # fmt: skip

    def time_round(self, request: dict[str, Any]) -> dict[str, Any]:
        active = request.get("active")
        only = None if active is None else {self.records[int(i)].case for i in active}
        index, block_time = int(request["index"]), float(request["block_time_s"])
        spacer = request.get("spacer_bytes")
        rounds: dict[Any, tuple[list[float], list[float]] | None] = {}
        for timing in self.groups:
            if spacer is not None:
                timing.reseat(int(spacer))
            timing.time_round(index, block_time, only=only, with_floor=bool(request.get("floor", True)))
            rounds.update({record.case: data for record, data in zip(timing.records, timing.last_round(), strict=True)})
        replies: list[dict[str, Any] | None] = []
        for record in self.records:
            if record.status is not CaseStatus.OK:
                replies.append({"status": str(record.status), "reason": record.reason})
            elif only is not None and record.case not in only:
                replies.append(None)
            else:
                data = rounds.get(record.case)
                replies.append(None if data is None else {"samples_ms": data[0], "floor_samples_ms": data[1]})
        return {"cases": replies}


def serve(requests: IO[str], replies: IO[str]) -> None:
    """Answer requests until ``quit`` or end of input (see the module docstring)."""
    worker = _Worker()

    def reply(payload: dict[str, Any]) -> None:
        replies.write(json.dumps(payload) + "\n")
        replies.flush()

    reply(HELLO)
    for line in requests:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            op = request.get("op")
            if op == "quit":
                return
            if op == "setup":
                reply(worker.setup(request))
            elif op == "round":
                reply(worker.time_round(request))
            else:
                reply({"error": f"unknown op {op!r}"})
        except Exception as exc:  # noqa: BLE001 - the driver gets the reason, the worker goes on
            reply({"error": f"{type(exc).__name__}: {exc}"})


def main() -> None:
    """``dbench worker``: serve on stdin/stdout, with everything else written to stdout (by
    Python or by C code, through file descriptor 1) sent to stderr instead."""
    import os

    sys.stdout.flush()
    replies = os.fdopen(os.dup(1), "w", buffering=1)  # the protocol keeps its own copy of stdout
    os.dup2(2, 1)  # and file descriptor 1 becomes stderr: a kernel's printf must not corrupt it
    sys.stdout = sys.stderr
    try:
        serve(sys.stdin, replies)
    finally:
        replies.close()
