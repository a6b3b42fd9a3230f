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

__all__ = ["RunOutcome", "RunRequest", "matrix_specs", "plan", "run_session"]


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """Everything one run was asked for. Times in seconds.

    ``exclusions`` are ``FIELD=VALUES`` texts (see :func:`matrix.parse_exclusion`), ``shard``
    an ``I/N`` text, ``malloc`` ``"steady"`` or ``"system"`` (:mod:`.allocator`).
    """

    implementations: Mapping[str, Implementation]
    specs: Sequence[MatrixSpec]
    """One matrix per family (:func:`matrix_specs`)."""
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


def matrix_specs(
    names_by_family: Mapping[str, Sequence[str]],
    *,
    shape: Sequence[str] | None = None,
    preset: str | None = None,
    block_size: Sequence[str] | None = None,
    p: Sequence[str] | None = None,
    holes: Sequence[str] | None = None,
    dtype: Sequence[str] | None = None,
    device: Sequence[str] | None = None,
    mode: str | None = None,
    inplace: bool = False,
    chosen: bool = True,
) -> tuple[MatrixSpec, ...]:
    """One matrix per family of ``names_by_family`` (family -> implementation names), from the
    options as the user typed them.

    With no ``shape``, each family runs its preset ``preset`` (default ``quick``); families
    without a preset of that name are left out. A family's preset fills whatever the options
    leave open (modes, block size). Each family takes the given shapes of the ranks it takes
    (``8x197x768`` goes to DropPath, not DropBlock2d). ``block_size`` and ``p`` apply to the
    families whose call takes them (Cutout's block size is its hole's length), ``holes`` to
    Cutout. ``chosen``: the user named the families (``--family`` or ``--impl``), so a family
    that takes none of the shapes is an error; otherwise it is left out. Bad input, or nothing
    left to run, raises :class:`~dropblock_bench.errors.DbenchError`.
    """
    from dropblock_bench.families.catalog import family_named

    shapes_given = tuple(dict.fromkeys(matrix.parse_shape(s) for s in matrix.split_values(shape)))
    blocks_given = tuple(dict.fromkeys(matrix.parse_block_size(v) for v in matrix.split_values(block_size)))
    ps_given = tuple(dict.fromkeys(matrix.parse_probability(v) for v in matrix.split_values(p)))
    holes_given = tuple(dict.fromkeys(matrix.parse_holes(v) for v in matrix.split_values(holes)))
    dtypes = tuple(dict.fromkeys(matrix.parse_dtype(v) for v in matrix.split_values(dtype))) or ("float32",)
    devices = tuple(dict.fromkeys(matrix.parse_device(v) for v in matrix.split_values(device))) or ("cpu",)
    inplace_values = (False, True) if inplace else (False,)
    modes_given = matrix.parse_mode(mode) if mode else None
    specs: list[MatrixSpec] = []
    for family_name, names in names_by_family.items():
        family = family_named(family_name)
        presets = matrix.PRESETS[family_name]
        own_shapes = tuple(one for one in shapes_given if len(one) in family.ranks)
        if shapes_given and preset is None:
            base = None
            if not own_shapes and not chosen:
                continue
            if not own_shapes:
                matrix.check_shape(shapes_given[0], family_name)  # raises, naming the layout it takes
        elif (preset or "quick") in presets:
            base = presets[preset or "quick"]
        else:
            continue
        shapes = own_shapes or (base.shapes if base else ())
        preset_block = (base.block_size if base else 0) or matrix.DEFAULT_BLOCK_SIZES.get(family_name, 0)
        specs.append(MatrixSpec(
            implementations=tuple(names),
            shapes=shapes,
            block_sizes=(blocks_given or (preset_block,)) if family.takes_block else (0,),
            ps=(ps_given or (0.1,)) if family.takes_p else (0.0,),
            modes=modes_given or (base.modes if base else ("forward",)),
            family=family_name,
            holes=(holes_given or (1,)) if "n_holes" in family.arguments else (0,),
            dtypes=dtypes,
            devices=devices,
            inplace=inplace_values,
        ))  # fmt: skip
    if not specs:
        if preset is not None and len(names_by_family) == 1:
            [name] = names_by_family
            raise DbenchError(f"no preset {preset!r} for {name}: use {', '.join(matrix.PRESETS[name])}")
        if preset is not None:
            raise DbenchError(f"no preset {preset!r} for these families: `dbench run --help` lists each one's")
        raise DbenchError("no chosen family takes shapes of that rank: choose one with --family (see `dbench list`)")
    return tuple(specs)


def plan(request: RunRequest) -> list[RunCase]:
    """The cases of ``request``, after exclusions and sharding; bad options raise
    :class:`~dropblock_bench.errors.DbenchError` before anything is timed."""
    if request.malloc not in MALLOC_REGIMES:
        raise DbenchError(f"unknown --malloc {request.malloc!r}: use {' or '.join(MALLOC_REGIMES)}")
    cases = [case for spec in request.specs for case in matrix.expand(spec)]
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
