"""One ``dbench run``: from options to records on disk. No printing.

:func:`plan` turns what the user asked for (a :class:`RunRequest`: implementations, matrix
options, exclusions, a shard) into the list of cases, refusing bad input before anything heavy
loads. :func:`run_session` times them (:mod:`.timing`), flags each record's noise
(:mod:`.noise`), writes it to the CSV and JSON files as it finishes (:mod:`.files`), and
returns a :class:`RunOutcome`, with how loaded the machine was (:mod:`.machine_load`: at the
start in the JSON meta at once, what happened during the run added at the end). Ctrl-C stops
the run and keeps every finished record: the outcome says it was interrupted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dropblock_bench.errors import DbenchError
from dropblock_bench.registry import Implementation
from dropblock_bench.run import machine_load, matrix
from dropblock_bench.run.allocator import MALLOC_REGIMES
from dropblock_bench.run.machine_load import MachineLoad
from dropblock_bench.run.matrix import MatrixSpec, RunCase
from dropblock_bench.run.records import CaseRecord, CaseStatus

__all__ = ["RunOutcome", "RunRequest", "matrix_spec", "plan", "run_session"]


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """Everything one run was asked for. Times in seconds.

    ``exclusions`` are ``FIELD=VALUES`` texts (see :func:`matrix.parse_exclusion`), ``shard``
    an ``I/N`` text, ``malloc`` ``"steady"`` or ``"system"`` (:mod:`.allocator`).
    """

    implementations: Mapping[str, Implementation]
    spec: MatrixSpec
    exclusions: Sequence[str] = ()
    shard: str | None = None
    min_time_s: float = 0.15
    rounds: int = 8
    measure_memory: bool = True
    threads: int | None = None
    malloc: str = "steady"
    csv_path: Path | None = None
    json_path: Path | None = None


@dataclasses.dataclass
class RunOutcome:
    """What a run produced: every finished record, in order, and what the run ran under."""

    cases: list[RunCase]
    records: list[CaseRecord] = dataclasses.field(default_factory=list)
    interrupted: bool = False
    backends: dict[str, str] = dataclasses.field(default_factory=dict)
    """Implementation name -> the code path it took here (:meth:`Implementation.backend_status`)."""
    allocator: str | None = None
    """The steady allocator regime in force, or None (the system's)."""
    machine_load: MachineLoad | None = None
    """How loaded the machine was: read as the run starts, completed once it ends or is
    interrupted with what happened during it (:func:`~dropblock_bench.run.machine_load.at_end`)."""

    def count(self, status: CaseStatus) -> int:
        return sum(record.status is status for record in self.records)


def matrix_spec(
    names: Sequence[str],
    *,
    shape: Sequence[str] | None = None,
    preset: str | None = None,
    block_size: Sequence[str] | None = None,
    p: Sequence[str] | None = None,
    dtype: Sequence[str] | None = None,
    device: Sequence[str] | None = None,
    mode: str | None = None,
    inplace: bool = False,
) -> MatrixSpec:
    """The matrix the options describe (texts as the user typed them); the quick preset fills
    whatever they leave open when no shape is given."""
    if preset is not None and preset not in matrix.PRESETS:
        raise DbenchError(f"unknown preset {preset!r}: use {' or '.join(matrix.PRESETS)}")
    base: Mapping[str, Any] = matrix.PRESETS[preset or "quick"] if (preset or not shape) else {}
    shapes = tuple(dict.fromkeys(matrix.parse_shape(s) for s in matrix.split_values(shape))) or base.get("shapes", ())
    modes = matrix.parse_mode(mode) if mode else base.get("modes", ("forward",))
    return MatrixSpec(
        implementations=tuple(names),
        shapes=shapes,
        block_sizes=tuple(dict.fromkeys(matrix.parse_block_size(v) for v in matrix.split_values(block_size))) or (7,),
        ps=tuple(dict.fromkeys(matrix.parse_probability(v) for v in matrix.split_values(p))) or (0.1,),
        dtypes=tuple(dict.fromkeys(matrix.parse_dtype(v) for v in matrix.split_values(dtype))) or ("float32",),
        devices=tuple(dict.fromkeys(matrix.parse_device(v) for v in matrix.split_values(device))) or ("cpu",),
        modes=modes,
        inplace=(False, True) if inplace else (False,),
    )


def plan(request: RunRequest) -> list[RunCase]:
    """The cases of ``request``, after exclusions and sharding; bad options raise
    :class:`~dropblock_bench.errors.DbenchError` before anything is timed."""
    if request.malloc not in MALLOC_REGIMES:
        raise DbenchError(f"unknown --malloc {request.malloc!r}: use {' or '.join(MALLOC_REGIMES)}")
    cases = matrix.expand(request.spec)
    exclusions = [matrix.parse_exclusion(text) for text in request.exclusions]
    cases = [case for case in cases if not any(e.matches(case) for e in exclusions)]
    if request.shard:
        cases = matrix.shard(cases, *matrix.parse_shard(request.shard))
    return cases


def run_metadata(
    request: RunRequest,
    cases: Sequence[RunCase],
    backends: Mapping[str, str],
    regime: str | None,
    load: MachineLoad | None = None,
) -> dict[str, Any]:
    """The ``meta`` of the JSON file: the machine (:func:`~dropblock_bench.metadata.machine_meta`),
    this run's settings, and ``load`` (the machine's load at the start) as ``machine_load``."""
    from dropblock_bench.metadata import machine_meta
    from dropblock_bench.run.allocator import memory_settings

    return machine_meta({
        "tool": "dbench run",
        "min_time_s": request.min_time_s,
        "rounds": request.rounds,
        "shard": request.shard,
        "n_cases": len(cases),
        "memory": memory_settings(regime),
        **({"backends": dict(backends)} if backends else {}),
        **({"machine_load": load.as_dict()} if load else {}),
    })  # fmt: skip


def _backends(request: RunRequest, cases: Sequence[RunCase]) -> dict[str, str]:
    """The code path of each implementation that runs a case here and reports one."""
    names = dict.fromkeys(case.implementation for case in cases)
    statuses = {name: request.implementations[name].backend_status() for name in names}
    return {name: status for name, status in statuses.items() if status}


def run_session(
    request: RunRequest,
    cases: Sequence[RunCase],
    *,
    on_start: Callable[[RunCase], None] | None = None,
    on_record: Callable[[CaseRecord], None] | None = None,
) -> RunOutcome:
    """Time ``cases`` (from :func:`plan`), writing each record, its noise flags set, to the
    request's files as it finishes; ``on_start`` sees each case as its blocks begin,
    ``on_record`` each record. The machine's load is read before and after the timing."""
    import torch

    from dropblock_bench.run.allocator import steady_glibc_malloc
    from dropblock_bench.run.files import CsvAppender, JsonRunWriter
    from dropblock_bench.run.noise import noise_flags
    from dropblock_bench.run.timing import RunSettings, run_matrix

    if request.threads:
        torch.set_num_threads(request.threads)
    outcome = RunOutcome(list(cases))
    if cases:
        outcome.backends = _backends(request, cases)
        outcome.allocator = steady_glibc_malloc() if request.malloc == "steady" else None
    load = machine_load.at_start()
    json_writer = None
    if request.json_path:  # metadata first: opening the CSV must not make the git tree look dirty
        json_writer = JsonRunWriter(request.json_path, run_metadata(request, cases, outcome.backends, outcome.allocator, load))
    writers: list[CsvAppender | JsonRunWriter] = [json_writer] if json_writer else []
    if request.csv_path:
        writers.append(CsvAppender(request.csv_path))

    def record_done(record: CaseRecord) -> None:
        if record.timing is not None:
            record.timing.noise = noise_flags(record.timing)
        outcome.records.append(record)
        for writer in writers:
            writer.append(record)
        if on_record:
            on_record(record)

    settings = RunSettings(min_time_s=request.min_time_s, rounds=request.rounds, measure_memory=request.measure_memory)
    ticks = machine_load.cpu_ticks()
    try:
        run_matrix(cases, request.implementations, settings, on_result=record_done, on_start=on_start)
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        outcome.machine_load = machine_load.at_end(load, ticks)
        if json_writer:
            json_writer.update_meta({"machine_load": outcome.machine_load.as_dict()})
        for writer in writers:
            writer.close()
    return outcome
