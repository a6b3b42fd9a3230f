"""``dbench ab``: interleaved, paired A/B timing of two installations, judged round by round.

Each side is a command that starts that side's ``dbench`` (e.g. ``../venv-base/bin/dbench``).
The driver plans the cases once and runs the two sides alternately, round by round, on the
same cases and the same input (seeded): round r runs base then head when r is even, head then
base when odd (ABBA), so neither side always goes first and a linear drift cancels over two
rounds. A side runs in a long-lived ``dbench worker`` process where its ``dbench`` has one
(warm-up paid once); an older ``dbench`` that has none runs one short ``dbench run --json`` per
round instead (:class:`RunPerRoundSide`), which pays its start-up every round but judges alike.

Each case is judged by its **paired** per-round ratios head/base (:func:`judge.judge_paired`) at
``alpha`` split over the cases and the looks (Bonferroni): the rounds go on, with a look every
few rounds, until every case is decided (regression, improvement or ``~``) or the rounds or the
time budget run out; a case still undecided then is ``inconclusive``, never ``~``. A case
decided at a look leaves the later rounds. Engines return data; nothing here prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import select
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from dropblock_bench.errors import DbenchError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from dropblock_bench.compare import Comparison
from dropblock_bench.run import judge
from dropblock_bench.run.matrix import RunCase
from dropblock_bench.run.records import CaseRecord, case_key, case_label
from dropblock_bench.run.rounds import round_value
from dropblock_bench.run.timing import SPACER_BYTES

__all__ = ["ABOutcome", "ABSettings", "RunPerRoundSide", "Side", "WorkerSide", "open_side", "run_ab"]

WORKER_START_TIMEOUT_S = 180.0

ROUND_TIMEOUT_S = 600.0

RoundData = tuple[list[float], list[float]]
"""One case's blocks in one round: (case samples, floor samples), ms."""


class ABError(DbenchError):
    """A side could not be started or stopped answering."""


@dataclasses.dataclass(frozen=True)
class ABSettings:
    """How ``dbench ab`` decides. Times in seconds; ``threshold`` and ``alpha`` fractions.

    Looks happen at ``first_look`` rounds, then each time the rounds have doubled, and at
    ``max_rounds``; ``alpha`` is split evenly over the cases and those looks (few looks, since
    they double: 16, 32, 64, 128, 256 by default).
    """

    threshold: float = 0.05
    alpha: float = 0.01
    measure: str = "time"
    block_time_s: float = 0.05
    first_look: int = 16
    max_rounds: int = 256
    budget_s: float = 600.0
    input_seed: int = 0
    threads: int | None = None
    malloc: str = "steady"

    def looks(self) -> list[int]:
        """The rounds after which cases are judged."""
        looks, look = [], min(self.first_look, self.max_rounds)
        while look < self.max_rounds:
            looks.append(look)
            look *= 2
        return [*looks, self.max_rounds]

    def level(self, n_cases: int) -> float:
        """The per-case, per-look test level: ``alpha / (cases x looks)``."""
        return self.alpha / (max(1, n_cases) * len(self.looks()))


class Side(Protocol):
    """One installation being timed."""

    label: str
    how: str
    """How it is driven, in words (``worker`` or ``one dbench run per round``)."""

    def setup(self, cases: Sequence[RunCase]) -> list[str | None]:
        """Prepare ``cases``; per case None (ready) or why it cannot run (skipped, error)."""
        ...

    def time_round(self, index: int, block_time_s: float, active: Sequence[int]) -> list[RoundData | str | None]:
        """One round of the ``active`` cases (indices); per case its blocks, the reason it
        failed, or None (not timed)."""
        ...

    def close(self) -> None: ...


class WorkerSide:
    """A side driven through a long-lived ``CMD worker`` process (JSON lines)."""

    how = "worker (warm-up once)"

    def __init__(self, label: str, process: subprocess.Popen[str], setup_options: dict[str, Any]) -> None:
        self.label, self._process = label, process
        self._floor = bool(setup_options.get("floor", True))
        self._spacers = random.Random()  # placements must differ between the sides and the rounds
        self._options = {key: value for key, value in setup_options.items() if key != "floor"}

    @classmethod
    def start(cls, label: str, command: Sequence[str], setup_options: dict[str, Any]) -> WorkerSide | None:
        """The side, or None when ``command`` has no worker (an older dbench)."""
        try:
            process = subprocess.Popen(
                [*command, "worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
        except OSError as exc:
            raise ABError(f"{label}: cannot start {shlex.join(command)}: {exc.strerror or exc}") from None
        assert process.stdout is not None
        line = _read_line(process.stdout, WORKER_START_TIMEOUT_S)
        try:
            hello = json.loads(line) if line else {}
        except json.JSONDecodeError:
            hello = {}
        if not isinstance(hello, dict) or hello.get("protocol") != "dbench-worker/1":
            process.kill()
            process.wait()
            return None
        return cls(label, process, setup_options)

    def _ask(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise ABError(f"{self.label}: the worker exited (code {process.poll()})") from None
        line = _read_line(process.stdout, timeout_s)
        if not line:
            raise ABError(f"{self.label}: the worker stopped answering (exit code {process.poll()})")
        reply = json.loads(line)
        if "error" in reply:
            raise ABError(f"{self.label}: the worker refused {request.get('op')}: {reply['error']}")
        return dict(reply)

    def setup(self, cases: Sequence[RunCase]) -> list[str | None]:
        flats = [CaseRecord(case).to_dict(samples=False) for case in cases]
        reply = self._ask({"op": "setup", "cases": flats, **self._options}, WORKER_START_TIMEOUT_S)
        return [None if entry["status"] == "ok" else f"{entry['status']}: {entry['reason']}" for entry in reply["cases"]]

    def time_round(self, index: int, block_time_s: float, active: Sequence[int]) -> list[RoundData | str | None]:
        request = {"op": "round", "index": index, "block_time_s": block_time_s, "active": list(active), "floor": self._floor,
                   "spacer_bytes": self._spacers.randrange(SPACER_BYTES)}  # fmt: skip
        reply = self._ask(request, ROUND_TIMEOUT_S)
        out: list[RoundData | str | None] = []
        for entry in reply["cases"]:
            if entry is None:
                out.append(None)
            elif "samples_ms" in entry:
                out.append(([float(v) for v in entry["samples_ms"]], [float(v) for v in entry["floor_samples_ms"]]))
            else:
                out.append(f"{entry['status']}: {entry['reason']}")
        return out

    def close(self) -> None:
        process = self._process
        try:
            if process.stdin:
                process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                process.stdin.close()
            process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()


class RunPerRoundSide:
    """A side whose dbench has no worker: one ``CMD run --rounds 1 --json FILE`` per round,
    with the run options the user gave (so an older release reads them as it always did)."""

    how = "one dbench run per round (no worker in this dbench)"

    def __init__(self, label: str, command: Sequence[str], run_args: Sequence[str]) -> None:
        self.label, self._command, self._run_args = label, list(command), list(run_args)
        self._keys: list[tuple[Any, ...]] = []
        self._folder = tempfile.TemporaryDirectory(prefix="dbench-ab-")

    def setup(self, cases: Sequence[RunCase]) -> list[str | None]:
        self._keys = [case.key for case in cases]
        return [None] * len(cases)

    def time_round(self, index: int, block_time_s: float, active: Sequence[int]) -> list[RoundData | str | None]:
        path = Path(self._folder.name) / f"round-{index}.json"
        command = [*self._command, "run", *self._run_args, "--rounds", "1", "--min-time", f"{block_time_s:g}", "--no-memory",
                   "--json", str(path)]  # fmt: skip
        try:
            finished = subprocess.run(command, capture_output=True, text=True, timeout=ROUND_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ABError(f"{self.label}: {shlex.join(command)} failed: {exc}") from None
        if finished.returncode not in (0, 1) or not path.exists():
            last = (finished.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise ABError(f"{self.label}: `{shlex.join(command)}` exited {finished.returncode}: {last}")
        try:
            by_key = {case_key(flat): flat for flat in json.loads(path.read_text()).get("cases", [])}
        except (ValueError, AttributeError, TypeError) as exc:
            raise ABError(f"{self.label}: `{shlex.join(command)}` wrote no readable results ({exc})") from None
        finally:
            path.unlink()
        wanted = set(active)
        out: list[RoundData | str | None] = []
        for position, key in enumerate(self._keys):
            flat = by_key.get(key)
            if position not in wanted:
                out.append(None)
            elif flat is None:
                out.append("missing: this dbench did not run the case")
            elif flat.get("status") != "ok" or not flat.get("samples_ms") or not flat.get("floor_samples_ms"):
                out.append(f"{flat.get('status')}: {flat.get('reason') or 'no samples'}")
            else:
                out.append(([float(v) for v in flat["samples_ms"]], [float(v) for v in flat["floor_samples_ms"]]))
        return out

    def close(self) -> None:
        self._folder.cleanup()


def _read_line(stream: IO[str], timeout_s: float) -> str:
    """One line from a child's stdout, or "" when none comes within ``timeout_s``."""
    ready, _, _ = select.select([stream], [], [], timeout_s)
    return stream.readline() if ready else ""


def parse_command(text: str) -> list[str]:
    """A side's command: a path to an executable (``../venv-base/bin/dbench``) or a command
    line (``python -m dropblock_bench``); refused in one line when its program is missing."""
    import shutil

    words = shlex.split(text)
    if not words:
        raise DbenchError("empty --base/--head command: give the path of a dbench, e.g. ../venv-base/bin/dbench")
    program = words[0]
    if shutil.which(program) is None and not (os.path.isfile(program) and os.access(program, os.X_OK)):
        raise DbenchError(f"{text!r} is not an executable: give the path of that side's dbench, e.g. ../venv-base/bin/dbench")
    return words


def open_side(label: str, command: Sequence[str], setup_options: dict[str, Any], run_args: Sequence[str]) -> Side:
    """A :class:`WorkerSide` where ``command`` has a worker, else a :class:`RunPerRoundSide`."""
    side = WorkerSide.start(label, command, setup_options)
    return side if side is not None else RunPerRoundSide(label, command, run_args)


def run_arguments(given: Mapping[str, Sequence[str] | str | int | bool | None]) -> list[str]:
    """The ``dbench run`` flags for what the user gave (flag -> value, list of values, a
    switch's bool, or None when not given), for a side without a worker."""
    arguments: list[str] = []
    for flag, value in given.items():
        if value is None or value is False:
            continue
        if value is True:
            arguments.append(flag)
        elif isinstance(value, (str, int)):
            arguments += [flag, str(value)]
        else:
            arguments += [part for item in value for part in (flag, item)]
    return arguments


def run_ab_commands(
    cases: Sequence[RunCase],
    commands: tuple[Sequence[str], Sequence[str]],
    run_args: Sequence[str],
    settings: ABSettings,
    on_round: Callable[[int, int], None] | None = None,
) -> ABOutcome:
    """Start both sides (:func:`open_side`), :func:`run_ab`, and stop the sides whatever happens."""
    setup = {"threads": settings.threads, "malloc": settings.malloc, "input_seed": settings.input_seed,
             "floor": settings.measure != "time"}  # fmt: skip
    with contextlib.ExitStack() as stack:
        base = open_side("base", commands[0], setup, run_args)
        stack.callback(base.close)
        head = open_side("head", commands[1], setup, run_args)
        stack.callback(head.close)
        return run_ab(cases, base, head, settings, on_round)


# --------------------------------------------------------------------------- the driver


@dataclasses.dataclass
class CaseEvidence:
    """One case's paired rounds so far: values in the chosen measure, and the last look's judgement."""

    case: RunCase
    base: list[float] = dataclasses.field(default_factory=list)
    head: list[float] = dataclasses.field(default_factory=list)
    base_times: list[float] = dataclasses.field(default_factory=list)
    head_times: list[float] = dataclasses.field(default_factory=list)
    judgement: judge.Judgement | None = None
    problem: dict[str, str] = dataclasses.field(default_factory=dict)
    """Side label -> why the case could not run there."""

    @property
    def decided(self) -> bool:
        return self.judgement is not None and self.judgement.verdict != judge.INCONCLUSIVE


@dataclasses.dataclass
class ABOutcome:
    """What ``dbench ab`` found: each case's evidence and verdict, and how the rounds ended."""

    settings: ABSettings
    evidence: list[CaseEvidence]
    rounds: int
    stop_reason: str
    elapsed_s: float
    level: float
    how: dict[str, str]
    """Side label -> how it was driven."""
    interrupted: bool = False


def run_ab(
    cases: Sequence[RunCase],
    base: Side,
    head: Side,
    settings: ABSettings,
    on_round: Callable[[int, int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ABOutcome:
    """Interleave the two sides round by round until every case is decided or the rounds or
    the budget run out (see the module docstring). ``on_round(rounds done, cases undecided)``
    follows progress. Ctrl-C stops the rounds and judges what was measured."""
    started = clock()
    evidence = [CaseEvidence(case) for case in cases]
    for side in (base, head):
        for item, problem in zip(evidence, side.setup(cases), strict=True):
            if problem:
                item.problem[side.label] = problem
    level = settings.level(sum(not item.problem for item in evidence))
    looks = settings.looks()
    rounds, stop, interrupted = 0, "", False
    try:
        while True:
            active = [i for i, item in enumerate(evidence) if not item.problem and not item.decided]
            if not active:
                stop = f"every case decided after {rounds} rounds"
                break
            if rounds >= settings.max_rounds:
                stop = f"reached {settings.max_rounds} rounds (--max-rounds)"
                break
            order = (base, head) if rounds % 2 == 0 else (head, base)
            results = {side.label: side.time_round(rounds, settings.block_time_s, active) for side in order}
            for i in active:
                _add_round(evidence[i], results[base.label][i], results[head.label][i], base.label, head.label, settings.measure)
            rounds += 1
            if on_round:
                on_round(rounds, len(active))
            if rounds in looks:
                _judge_all(evidence, settings, level, final=False)
                spent = clock() - started
                next_look = next((look for look in looks if look > rounds), None)
                undecided = any(not item.problem and not item.decided for item in evidence)
                if undecided and next_look is not None and spent / rounds * next_look > settings.budget_s:
                    stop = f"time budget: the next look ({next_look} rounds) would pass {settings.budget_s:g} s (--budget)"
                    break
    except KeyboardInterrupt:
        interrupted, stop = True, f"interrupted after {rounds} rounds"
    _judge_all(evidence, settings, level, final=True)
    return ABOutcome(settings, evidence, rounds, stop, clock() - started, level, {base.label: base.how, head.label: head.how},
                     interrupted)  # fmt: skip


def _add_round(item: CaseEvidence, base: RoundData | str | None, head: RoundData | str | None, base_label: str,
               head_label: str, measure: str) -> None:  # fmt: skip
    for label, data in ((base_label, base), (head_label, head)):
        if isinstance(data, str):
            item.problem.setdefault(label, data)
    if isinstance(base, tuple) and isinstance(head, tuple) and not item.problem:
        item.base.append(round_value(base[0], base[1], measure))
        item.head.append(round_value(head[0], head[1], measure))
        item.base_times.append(round_value(base[0], base[1], "time"))
        item.head_times.append(round_value(head[0], head[1], "time"))


def _judge_all(evidence: Sequence[CaseEvidence], settings: ABSettings, level: float, *, final: bool) -> None:
    """Judge every case still undecided (at a look, or at the end: whatever was measured)."""
    for item in evidence:
        if item.problem or item.decided or not item.base:
            continue
        if not final or item.judgement is None or len(item.base) != item.judgement.n_base:
            item.judgement = judge.judge_paired(item.base, item.head, settings.threshold, level)


def case_name(case: RunCase) -> str:
    """The case as compare and the reports name it."""
    return case_label(CaseRecord(case).to_dict(samples=False))


def median_or_nan(values: Sequence[float]) -> float:
    from statistics import median

    return median(values) if values else math.nan


def ab_comparison(outcome: ABOutcome, base_label: str = "base", head_label: str = "head") -> Comparison:
    """The outcome as a :class:`~dropblock_bench.compare.Comparison`, so ``dbench ab`` prints,
    writes and fails exactly as ``dbench compare`` does. A case that raises on the head and not
    on the base is failing; one skipped or missing on a side is listed as only in the other."""
    from dropblock_bench.compare import CaseComparison, Comparison
    from dropblock_bench.run.rounds import MEASURE_WORDS

    cases: list[CaseComparison] = []
    failing: dict[str, str] = {}
    still_failing: dict[str, str] = {}
    only_base: list[str] = []
    only_head: list[str] = []
    for item in outcome.evidence:
        name = case_name(item.case)
        base_problem, head_problem = item.problem.get(base_label), item.problem.get(head_label)
        base_error = base_problem is not None and base_problem.startswith("error")
        if head_problem is not None and head_problem.startswith("error"):
            (still_failing if base_error else failing)[name] = head_problem.split(": ", 1)[-1]
        elif base_problem and not head_problem:
            only_head.append(name)
        elif head_problem and not base_problem:
            only_base.append(name)
        elif item.judgement is not None and not base_problem:
            j = item.judgement
            note = f"about {j.rounds_needed} paired rounds would decide" if j.verdict == judge.INCONCLUSIVE and j.rounds_needed else ""
            cases.append(CaseComparison(key=name, base_median_ms=median_or_nan(item.base_times),
                                        head_median_ms=median_or_nan(item.head_times), ratio=j.ratio, ratio_ci_low=j.ci_low,
                                        ratio_ci_high=j.ci_high, p_value=j.p_value, n_base=j.n_base, n_head=j.n_head,
                                        test=j.test, verdict=j.verdict, note=note, rounds_needed=j.rounds_needed))  # fmt: skip
    settings = outcome.settings
    ratios = [c.ratio for c in cases if c.ratio > 0]
    sides = "; ".join(f"{label}: {how}" for label, how in outcome.how.items())
    evidence = (f"{outcome.rounds} interleaved rounds (ABBA), paired round by round; measure: {MEASURE_WORDS[settings.measure]};"
                f" {sides}")  # fmt: skip
    warnings = []
    if any(c.verdict == judge.INCONCLUSIVE for c in cases):
        warnings.append("some cases are inconclusive: give them more rounds or time (--max-rounds, --budget, --block-time)")
    return Comparison(
        cases=cases, only_in_base=sorted(only_base), only_in_head=sorted(only_head),
        geomean_ratio=math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else None,
        threshold=settings.threshold, alpha=settings.alpha, warnings=warnings, failing=failing, still_failing=still_failing,
        evidence=evidence, level=outcome.level, stop=outcome.stop_reason,
    )  # fmt: skip
