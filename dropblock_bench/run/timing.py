"""The ``dbench run`` engine: time each case against a memory-floor op, interleaved. No printing.

Timing uses :class:`torch.utils.benchmark.Timer` (warm-up, adaptive repetitions, CUDA
synchronisation). The cases of one turn group (same shape, device, mode, block and p; every
implementation and dtype) are timed together, in ``rounds`` rounds, the implementations of a
dtype on one shared input; in each round every case runs one block and its floor op one
block, ``x * c`` (``x.mul_(c)`` for in-place cases; with ``.backward(g)`` in backward mode),
an implementation's dtypes one after another. The order rotates from round to round (the
implementations, the dtypes within each, and whether a case or its floor goes first), so no
block always follows the same one and an order effect cannot pass for a difference.
So ``floor_ratio``, the comparison of two implementations and that of two dtypes' ratios all
hold on a noisy machine: each sees the same drifts. Every raw sample is kept (each is the mean
of one block of repetitions, in milliseconds), with how many each round gave, so the rounds
can serve as paired replicates (``reports/targets.py`` compares dtypes' ratios round by round).
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Callable, Container, Iterable, Mapping
from typing import Any

import torch
from torch.utils import benchmark as torch_benchmark

from dropblock_bench.registry import Implementation
from dropblock_bench.run.matrix import RunCase
from dropblock_bench.run.memory import peak_memory_bytes, saved_for_backward_bytes
from dropblock_bench.run.records import CaseRecord, CaseStatus, MemoryUse, Timing
from dropblock_bench.stats import summarize

FLOOR_CONSTANT = 1.0001
SPACER_BYTES = 4 << 20
"""Before each round the inputs are reseated behind a spacer of up to this many bytes (a
random size): 4 MiB covers every offset modulo the 2 MiB huge page and the 4 KiB page."""


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """How long to time each case (seconds, split over ``rounds``) and whether to measure memory."""

    min_time_s: float = 0.3
    rounds: int = 3
    measure_memory: bool = True


def skip_reason(case: RunCase, impl: Implementation) -> str | None:
    """Why ``case`` cannot run here, or None."""
    device = torch.device(case.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        return "cuda is not available"
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        return f"{case.device} is not present ({torch.cuda.device_count()} CUDA device(s))"
    if device.type == "mps" and not torch.backends.mps.is_available():
        return "mps is not available"
    if device.type not in impl.devices:
        return f"{impl.name} does not run on {device.type}"
    if case.dtype not in impl.dtypes:
        return f"{impl.name} does not support {case.dtype}"
    if case.mode == "backward" and not impl.supports_backward:
        return f"{impl.name} does not support backward"
    if case.inplace and not impl.supports_inplace:
        return f"{impl.name} does not support inplace"
    if case.inplace and case.mode == "backward":
        return "in-place on a leaf cannot be differentiated; time backward out of place"
    if "block_size" in case.arguments:  # DropBlock's blocks must fit (Cutout's holes are clipped)
        spatial = case.shape[2:]
        if case.block_size > min(spatial):
            return f"block {case.block_size} is larger than the {'x'.join(map(str, spatial))} map"
    return None


_SCOPE_NAMES = {"p": "p", "block_size": "k", "length": "k", "n_holes": "n"}
"""The timer's name of each argument a family's call takes after ``x``."""


def _call(case: RunCase) -> str:
    """The case's call as the timer runs it: ``fn(x, p, k)`` for DropBlock2d, ``fn(x, p)`` for
    DropPath, ``fn(x, n, k)`` for Cutout."""
    return f"fn(x, {', '.join(_SCOPE_NAMES[name] for name in case.arguments)}"


def _statements(case: RunCase) -> tuple[str, str]:
    """(case statement, floor statement) for the timer."""
    kwargs = ", inplace=True" if case.inplace else ""
    if case.mode == "backward":
        return (f"x.grad = None; {_call(case)}).backward(g)", "x.grad = None; (x * c).backward(g)")
    return (f"{_call(case)}{kwargs})", "x.mul_(c)" if case.inplace else "x * c")


def _bytes_moved(case: RunCase, x: torch.Tensor) -> int:
    """Bytes that must be read and written at least: x in, out out; backward adds g in, grad out."""
    return x.numel() * x.element_size() * (4 if case.mode == "backward" else 2)


def run_case(case: RunCase, impl: Implementation, settings: RunSettings) -> CaseRecord:
    """Time one case; failures become ``status="error"`` with the message, never an exception."""
    return run_group([case], {case.implementation: impl}, settings)[0]


def _error_reason(exc: BaseException) -> str:
    if isinstance(exc, torch.OutOfMemoryError):
        return f"out of memory: {str(exc).splitlines()[0][:160]}"
    message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}".rstrip(": ")


@dataclasses.dataclass
class _Timed:
    """A case being timed: its record, timers, the scope they run in, and the samples so far."""

    result: CaseRecord
    fn: Callable[..., torch.Tensor]
    scope: dict[str, Any]
    timer: torch_benchmark.Timer
    floor_timer: torch_benchmark.Timer
    samples_ms: list[float] = dataclasses.field(default_factory=list)
    floor_samples_ms: list[float] = dataclasses.field(default_factory=list)
    samples_per_round: list[int] = dataclasses.field(default_factory=list)
    floor_samples_per_round: list[int] = dataclasses.field(default_factory=list)


def _inputs(case: RunCase) -> dict[str, Any]:
    """The input (and upstream gradient) a setting's implementations share."""
    device, dtype = torch.device(case.device), getattr(torch, case.dtype)
    inputs: dict[str, Any] = {"x": torch.randn(case.shape, device=device, dtype=dtype)}
    if case.mode == "backward":
        inputs["x"].requires_grad_()
        inputs["g"] = torch.randn(case.shape, device=device, dtype=dtype)
    return inputs


def _fresh_copy(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor``'s values in a new allocation, a leaf that requires grad where it did."""
    copy = torch.empty_like(tensor).copy_(tensor.detach())
    return copy.requires_grad_() if tensor.requires_grad else copy


def _start(case: RunCase, impl: Implementation, inputs: dict[str, Any], result: CaseRecord) -> _Timed:
    fn = impl.load()
    scope: dict[str, Any] = {}
    return _Timed(result, fn, scope, *_timers(case, fn, inputs, scope))


def _timers(case: RunCase, fn: Callable[..., torch.Tensor], inputs: dict[str, Any],
            scope: dict[str, Any]) -> tuple[torch_benchmark.Timer, torch_benchmark.Timer]:  # fmt: skip
    """The case's timer and its floor's, over ``scope`` filled with the function, p, k, c and ``inputs``."""
    scope.update({"fn": fn, "p": case.p, "k": case.block_size, "n": case.holes, "c": FLOOR_CONSTANT, **inputs})
    statement, floor_statement = _statements(case)
    threads = torch.get_num_threads()
    return (torch_benchmark.Timer(statement, globals=scope, num_threads=threads),
            torch_benchmark.Timer(floor_statement, globals=scope, num_threads=threads))  # fmt: skip


def _seat(timed: _Timed, inputs: dict[str, Any]) -> None:
    """(Re)build ``timed``'s timers over ``inputs``."""
    scope: dict[str, Any] = {}
    timed.timer, timed.floor_timer = _timers(timed.result.case, timed.fn, inputs, scope)
    timed.scope = scope


def _finish(timed: _Timed, settings: RunSettings) -> None:
    """Summarise the samples into the record's :class:`Timing`, and measure its memory."""
    result, case = timed.result, timed.result.case
    summary, floor = summarize(timed.samples_ms), summarize(timed.floor_samples_ms)
    x = timed.scope["x"]
    result.timing = Timing(
        median_ms=summary.median,
        iqr_ms=summary.iqr,
        ci_low_ms=summary.ci_low,
        ci_high_ms=summary.ci_high,
        n_samples=summary.n,
        floor_median_ms=floor.median,
        floor_ratio=summary.median / floor.median if floor.median > 0 else None,
        gbps=_bytes_moved(case, x) / (summary.median * 1e-3) / 1e9 if summary.median > 0 else None,
        samples_ms=timed.samples_ms,
        floor_samples_ms=timed.floor_samples_ms,
        samples_per_round=timed.samples_per_round,
        floor_samples_per_round=timed.floor_samples_per_round,
    )
    memory = MemoryUse()
    if settings.measure_memory:
        memory.peak_mem_bytes = peak_memory_bytes(_one_call(case, timed.fn, timed.scope), torch.device(case.device))
    if case.mode == "backward":
        memory.saved_bytes = saved_for_backward_bytes(lambda: timed.fn(x, *case.arguments.values()), exclude=x)
    if memory != MemoryUse():
        result.memory = memory


def _fail(result: CaseRecord, exc: BaseException) -> None:
    result.status, result.reason, result.timing = CaseStatus.ERROR, _error_reason(exc), None


class GroupTiming:
    """The cases of one turn group (:attr:`RunCase.turn_group`) being timed, round by round.

    Construction loads each case's implementation and builds its timers on the shared input of
    its dtype (``torch.manual_seed(input_seed)`` first, so two processes time the same input);
    a case that is skipped or fails is kept as a record with its reason. :meth:`time_round`
    times one block per live case and one of its floor; :meth:`finish` summarises. ``run_group``
    does all three; a worker (``dbench ab``) keeps the object and times rounds on request.
    """

    def __init__(self, cases: list[RunCase], implementations: Mapping[str, Implementation], input_seed: int | None = None) -> None:
        self.records = [CaseRecord(case) for case in cases]
        self._spacer: torch.Tensor | None = None
        timed: list[_Timed] = []
        inputs: dict[str, dict[str, Any]] = {}  # by dtype
        self._inputs = inputs
        for result in self.records:
            case = result.case
            impl = implementations[case.implementation]
            reason = skip_reason(case, impl)
            if reason:
                result.status, result.reason = CaseStatus.SKIPPED, reason
                continue
            try:
                if case.dtype not in inputs:
                    if input_seed is not None:
                        torch.manual_seed(input_seed)
                    inputs[case.dtype] = _inputs(case)
                timed.append(_start(case, impl, inputs[case.dtype], result))
            except Exception as exc:  # noqa: BLE001 - a failing implementation is a result, not a crash
                _fail(result, exc)
        # Each round times an implementation's dtypes back to back: its dtypes' ratios to their
        # floors then compare within seconds, not across the other implementations' blocks.
        names = list(dict.fromkeys(case.implementation for case in cases))
        groups = [[entry for entry in timed if entry.result.case.implementation == name] for name in names]
        self._groups = [group for group in groups if group]

    def reseat(self, spacer_bytes: int) -> None:
        """Give every input a fresh place in memory: drop the old spacer, take one of
        ``spacer_bytes``, copy each input (the same values) into a fresh allocation, and rebuild
        the timers over the copies; the old inputs are freed.

        Where a tensor sits decides a memory-bound op's speed: on this project's 2-core machine
        a case's time moves by up to 20 % from one placement to another, and a process keeps
        its placement. A worker that reseats before every round (``dbench ab``) draws a fresh
        placement each round, so a placement's luck is noise that rounds average, not a bias
        that pairing two processes would call a change."""
        live = [entry for group in self._groups for entry in group]
        for entry in live:
            entry.scope.clear()
        self._spacer = None
        self._spacer = torch.empty(max(1, spacer_bytes), dtype=torch.uint8)
        for dtype, inputs in self._inputs.items():
            self._inputs[dtype] = {name: _fresh_copy(tensor) for name, tensor in inputs.items()}
        for entry in live:
            _seat(entry, self._inputs[entry.result.case.dtype])

    def time_round(
        self,
        round_index: int,
        block_time_s: float,
        on_start: Callable[[RunCase], None] | None = None,
        only: Container[RunCase] | None = None,
        with_floor: bool = True,
    ) -> None:
        """One block (at least ``block_time_s`` seconds, at least one call) of every live case
        (of those in ``only``, if given) and of its floor (none with ``with_floor=False``: the
        round then records 0 floor samples). Round r takes the implementations, and each one's
        cases, in their order rotated by r, and times the floor first when r is odd. A case
        that raises becomes an error record and leaves the rounds."""
        for group in _rotated(self._groups, round_index):
            for entry in _rotated(group, round_index):
                if only is not None and entry.result.case not in only:
                    continue
                if on_start:
                    on_start(entry.result.case)
                try:
                    floor_times: list[float] = []
                    if round_index % 2 and with_floor:  # the floor first
                        floor_times = entry.floor_timer.blocked_autorange(min_run_time=block_time_s).times
                    times = entry.timer.blocked_autorange(min_run_time=block_time_s).times
                    if not round_index % 2 and with_floor:
                        floor_times = entry.floor_timer.blocked_autorange(min_run_time=block_time_s).times
                    entry.samples_ms += [t * 1e3 for t in times]
                    entry.floor_samples_ms += [t * 1e3 for t in floor_times]
                    entry.samples_per_round.append(len(times))
                    entry.floor_samples_per_round.append(len(floor_times))
                except Exception as exc:  # noqa: BLE001
                    _fail(entry.result, exc)
                    group.remove(entry)

    def last_round(self) -> list[tuple[list[float], list[float]] | None]:
        """Per record, in order: the last timed round's (case samples, floor samples) in ms,
        or None for a case that is not live (skipped, failed, or not yet timed)."""
        live = {id(entry.result): entry for group in self._groups for entry in group}
        rounds: list[tuple[list[float], list[float]] | None] = []
        for record in self.records:
            entry = live.get(id(record))
            if entry is None or not entry.samples_per_round:
                rounds.append(None)
                continue
            count, floor_count = entry.samples_per_round[-1], entry.floor_samples_per_round[-1]
            floor = entry.floor_samples_ms[len(entry.floor_samples_ms) - floor_count :]
            rounds.append((entry.samples_ms[-count:], floor))
        return rounds

    def finish(self, settings: RunSettings) -> list[CaseRecord]:
        """Summarise every live case into its :class:`Timing` (and memory); the records in order."""
        for entry in (entry for group in self._groups for entry in group):
            try:
                _finish(entry, settings)
            except Exception as exc:  # noqa: BLE001
                _fail(entry.result, exc)
        return self.records


def run_group(
    cases: list[RunCase],
    implementations: Mapping[str, Implementation],
    settings: RunSettings,
    on_start: Callable[[RunCase], None] | None = None,
) -> list[CaseRecord]:
    """Time the cases of one turn group together (:class:`GroupTiming`), in
    ``settings.rounds`` rounds of one block per case and one of its floor, the cases of one
    dtype on a shared input. Results in the order of ``cases``; a case that is skipped or
    fails is a result with its reason, never an exception, and the others go on."""
    timing = GroupTiming(cases, implementations)
    placements = random.Random()
    for round_index in range(settings.rounds):
        if round_index:  # each round on inputs in a fresh place (GroupTiming.reseat): rounds are replicates
            timing.reseat(placements.randrange(SPACER_BYTES))
        timing.time_round(round_index, settings.min_time_s / settings.rounds, on_start)
    return timing.finish(settings)


def _rotated(items: list[Any], by: int) -> list[Any]:
    """``items`` rotated left by ``by`` places (a new list)."""
    if not items:
        return []
    by %= len(items)
    return items[by:] + items[:by]


def _one_call(case: RunCase, fn: Callable[..., torch.Tensor], scope: dict[str, Any]) -> Callable[[], object]:
    x, arguments = scope["x"], tuple(case.arguments.values())
    if case.mode == "backward":

        def forward_backward() -> None:
            x.grad = None
            fn(x, *arguments).backward(scope["g"])

        return forward_backward
    if case.inplace:
        return lambda: fn(x, *arguments, inplace=True)
    return lambda: fn(x, *arguments)


def run_matrix(
    cases: Iterable[RunCase],
    implementations: Mapping[str, Implementation],
    settings: RunSettings,
    on_result: Callable[[CaseRecord], None] | None = None,
    on_start: Callable[[RunCase], None] | None = None,
) -> list[CaseRecord]:
    """Run every case (``implementations`` maps each case's name to its record), consecutive
    cases of one turn group together (:func:`run_group`); ``on_result`` sees each result as
    soon as its group is done, ``on_start`` each case as its blocks begin."""
    results: list[CaseRecord] = []
    for _, group in itertools.groupby(cases, key=lambda case: case.turn_group):
        for result in run_group(list(group), implementations, settings, on_start):
            results.append(result)
            if on_result:
                on_result(result)
    return results
