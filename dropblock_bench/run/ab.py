"""``dbench ab``: interleaved, paired A/B timing of two installations, judged pair by pair.

Each side is a command that starts that side's ``dbench`` (e.g. ``../venv-base/bin/dbench``).
The driver plans the cases once and starts a **pair** of fresh workers, one per side, which
time the same cases on the same (seeded) input alternately, round by round: base then head in
a pair's even rounds, head then base in its odd ones (ABBA), so neither side always goes first
and a linear drift cancels; then both stop, and the next pair starts. A side runs in a
``dbench worker`` process where its ``dbench`` has one; an older ``dbench`` without one runs one
short ``dbench run --json`` per round instead (:class:`RunPerRoundSide`), which judges alike.

Why pairs and not rounds: two processes running identical code on identical input differ, on
this project's 2-core machine, by up to 20 % for their whole life (the placement of code and
data; the workers reseat their inputs every round, which spreads the data's share of that but
not all of it). Rounds of one pair share that pair's luck; the **pair** is the replicate, and
its value is the median of its rounds' ratios head/base. Each case is judged by those values
(:func:`judge.judge_log_ratios`) at ``alpha`` split over the cases and the looks (Bonferroni):
the pairs go on, with a look at 16 pairs and each doubling, until every case is decided
(regression, improvement or ``~``) or the pairs or the time budget run out; a case still
undecided then is ``inconclusive``, never ``~``. A case decided at a look leaves the later
pairs. Engines return data; nothing here prints.
"""

from __future__ import annotations

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

import numpy as np

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

    The replicate is a **pair** of fresh workers (one per side) timing ``rounds_per_pair``
    interleaved rounds: its median paired ratio. Looks happen at ``first_look`` pairs, then
    each time the pairs have doubled, and at ``max_pairs``; ``alpha`` is split evenly over the
    cases and those looks (16 and 32 by default: two).
    """

    threshold: float = 0.05
    alpha: float = 0.01
    measure: str = "time"
    block_time_s: float = 0.05
    rounds_per_pair: int = 16
    first_look: int = 16
    max_pairs: int = 32
    budget_s: float = 600.0
    input_seed: int = 0
    threads: int | None = None
    malloc: str = "steady"

    def looks(self) -> list[int]:
        """The numbers of pairs after which cases are judged."""
        looks, look = [], min(self.first_look, self.max_pairs)
        while look < self.max_pairs:
            looks.append(look)
            look *= 2
        return [*looks, self.max_pairs]

    def level(self, n_cases: int) -> float:
        """The per-case, per-look test level: ``alpha / (cases x looks)``."""
        return self.alpha / (max(1, n_cases) * len(self.looks()))


class Side(Protocol):
    """One installation being timed."""

    label: str
    how: str
    """How it is driven, in words (``worker`` or ``one dbench run per round``)."""
    conditions: dict[str, Any]
    """What its times depend on besides the code (torch version, threads, CPU), once known."""

    def setup(self, cases: Sequence[RunCase]) -> list[str | None]:
        """Prepare ``cases``; per case None (ready) or why it cannot run (skipped, error)."""
        ...

    def time_round(self, index: int, block_time_s: float, active: Sequence[int]) -> list[RoundData | str | None]:
        """One round of the ``active`` cases (indices); per case its blocks, the reason it
        failed, or None (not timed)."""
        ...

    def close(self) -> None: ...


class WorkerSide:
    """A side driven through a ``CMD worker`` process (JSON lines), for one pair."""

    how = "worker"

    def __init__(self, label: str, process: subprocess.Popen[str], setup_options: dict[str, Any], stderr: IO[str]) -> None:
        self.label, self._process, self._stderr = label, process, stderr
        self.conditions: dict[str, Any] = {}
        self._floor = bool(setup_options.get("floor", True))
        self._spacers = random.Random()  # placements must differ between the sides and the rounds
        self._options = {key: value for key, value in setup_options.items() if key != "floor"}

    @classmethod
    def start(cls, label: str, command: Sequence[str], setup_options: dict[str, Any]) -> WorkerSide | None:
        """The side, or None when ``command`` has no worker (an older dbench: it exits at once
        on the unknown command); a command that neither announces a worker nor exits is an error."""
        stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed with the side
        try:
            process = subprocess.Popen([*command, "worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
        except OSError as exc:
            stderr.close()
            raise ABError(f"{label}: cannot start {shlex.join(command)}: {exc.strerror or exc}") from None
        assert process.stdout is not None
        line = _read_line(process.stdout, WORKER_START_TIMEOUT_S)
        try:
            hello = json.loads(line) if line else None
        except json.JSONDecodeError:
            hello = None
        if isinstance(hello, dict) and hello.get("protocol") == "dbench-worker/1":
            return cls(label, process, setup_options, stderr)
        code = None
        if not line:
            try:
                code = process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                code = None
        if code is not None:  # exited without a word on stdout: no worker in this dbench
            stderr.close()
            return None
        process.kill()
        process.wait()
        side = cls(label, process, setup_options, stderr)
        message = f"answered {line.strip()[:80]!r}" if line else f"said nothing in {WORKER_START_TIMEOUT_S:g} s"
        raise ABError(f"{label}: `{shlex.join([*command, 'worker'])}` {message}{side.last_words()}")

    def last_words(self) -> str:
        """The worker's last line on stderr, as ``: ...`` for a message ("" if none)."""
        try:
            self._stderr.seek(0)
            lines = [line.strip() for line in self._stderr.read().splitlines() if line.strip()]
        except (OSError, ValueError):
            return ""
        return f": {lines[-1][:200]}" if lines else ""

    def _died(self, what: str) -> ABError:
        try:
            code = self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        return ABError(f"{self.label}: the worker {what} (exit code {code}){self.last_words()}")

    def _ask(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died("exited") from None
        line = _read_line(process.stdout, timeout_s)
        if not line:
            raise self._died("stopped answering")
        try:
            reply = json.loads(line)
        except json.JSONDecodeError:
            raise ABError(f"{self.label}: the worker answered {line.strip()[:80]!r}, not JSON") from None
        if not isinstance(reply, dict):
            raise ABError(f"{self.label}: the worker answered {line.strip()[:80]!r}, not an object")
        if "error" in reply:
            raise ABError(f"{self.label}: the worker refused {request.get('op')}: {reply['error']}")
        return reply

    def setup(self, cases: Sequence[RunCase]) -> list[str | None]:
        flats = [CaseRecord(case).to_dict(samples=False) for case in cases]
        reply = self._ask({"op": "setup", "cases": flats, **self._options}, WORKER_START_TIMEOUT_S)
        try:
            self.conditions = dict(reply.get("meta") or {})
            return [None if entry["status"] == "ok" else f"{entry['status']}: {entry['reason']}" for entry in reply["cases"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ABError(f"{self.label}: the worker's setup reply is malformed ({type(exc).__name__}: {exc})") from None

    def time_round(self, index: int, block_time_s: float, active: Sequence[int]) -> list[RoundData | str | None]:
        request = {"op": "round", "index": index, "block_time_s": block_time_s, "active": list(active), "floor": self._floor,
                   "spacer_bytes": self._spacers.randrange(SPACER_BYTES)}  # fmt: skip
        reply = self._ask(request, ROUND_TIMEOUT_S)
        out: list[RoundData | str | None] = []
        try:
            for entry in reply["cases"]:
                if entry is None:
                    out.append(None)
                elif "samples_ms" in entry:
                    out.append(([float(v) for v in entry["samples_ms"]], [float(v) for v in entry["floor_samples_ms"]]))
                else:
                    out.append(f"{entry['status']}: {entry['reason']}")
        except (KeyError, TypeError, ValueError) as exc:
            raise ABError(f"{self.label}: the worker's round reply is malformed ({type(exc).__name__}: {exc})") from None
        return out

    def close(self) -> None:
        process = self._process
        try:
            if process.stdin and not process.stdin.closed:
                process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                process.stdin.close()
            process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()
        self._stderr.close()


class RunPerRoundSide:
    """A side whose dbench has no worker: one ``CMD run --rounds 1 --json FILE`` per round,
    with the run options the user gave (so an older release reads them as it always did)."""

    how = "one dbench run per round (no worker in this dbench)"

    def __init__(self, label: str, command: Sequence[str], run_args: Sequence[str]) -> None:
        self.label, self._command, self._run_args = label, list(command), list(run_args)
        self.conditions: dict[str, Any] = {}
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
            payload = json.loads(path.read_text())
            self.conditions = self.conditions or dict(payload.get("meta") or {})
            by_key = {case_key(flat): flat for flat in payload.get("cases", [])}
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
    on_pair: Callable[[int, int], None] | None = None,
) -> ABOutcome:
    """:func:`run_ab` over fresh pairs of sides started from ``commands`` (:func:`open_side`,
    both at once), each stopped when its rounds are done, whatever happens."""
    from concurrent.futures import ThreadPoolExecutor

    setup = {"threads": settings.threads, "malloc": settings.malloc, "input_seed": settings.input_seed,
             "floor": settings.measure != "time"}  # fmt: skip

    def open_pair() -> tuple[Side, Side]:
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(open_side, label, command, setup, run_args)
                       for label, command in zip(("base", "head"), commands, strict=True)]  # fmt: skip
        errors = [future.exception() for future in futures]
        if any(errors):
            for future, error in zip(futures, errors, strict=True):
                if error is None:
                    future.result().close()
            raise next(error for error in errors if error is not None)
        return futures[0].result(), futures[1].result()

    return run_ab(cases, open_pair, settings, on_pair)


# --------------------------------------------------------------------------- the driver


@dataclasses.dataclass
class CaseEvidence:
    """One case so far: the log of each worker pair's median paired ratio (the replicates), every
    round's time per side (for display), the last look's judgement, and why it could not run."""

    case: RunCase
    pair_log_ratios: list[float] = dataclasses.field(default_factory=list)
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
    pairs: int
    rounds: int
    stop_reason: str
    elapsed_s: float
    level: float
    how: dict[str, str]
    """Side label -> how it was driven."""
    interrupted: bool = False
    conditions: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    """Side label -> what its times depend on besides the code (see :attr:`Side.conditions`)."""
    error: str | None = None
    """Why the pairs stopped early, where a side failed (what was measured is still judged)."""


def run_ab(
    cases: Sequence[RunCase],
    open_pair: Callable[[], tuple[Side, Side]],
    settings: ABSettings,
    on_pair: Callable[[int, int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ABOutcome:
    """Pairs of fresh sides, each timing ``rounds_per_pair`` interleaved rounds, until every case
    is decided or the pairs or the budget run out (see the module docstring).
    ``on_pair(pairs done, cases undecided)`` follows progress. Ctrl-C stops and judges what
    was measured.

    Why fresh workers: on this project's 2-core machine two processes running identical code on
    identical input differ by up to 20 % for their whole life (placement of code and data, which
    reallocating the inputs does not undo), so rounds of one pair of processes share that
    pair's luck; the pair, not the round, is the replicate."""
    started = clock()
    evidence = [CaseEvidence(case) for case in cases]
    level = settings.level(len(cases))
    looks = settings.looks()
    pairs = rounds = 0
    stop, interrupted, error = "", False, None
    how: dict[str, str] = {}
    conditions: dict[str, dict[str, Any]] = {}
    try:
        while True:
            active = [i for i, item in enumerate(evidence) if not item.problem and not item.decided]
            if not active:
                ran = any(item.pair_log_ratios for item in evidence)
                stop = f"every case decided after {pairs} worker pairs" if ran else "no case runs on both sides"
                break
            if pairs >= settings.max_pairs:
                stop = f"reached {settings.max_pairs} worker pairs (--max-pairs)"
                break
            base, head = open_pair()
            try:
                for side in (base, head):
                    for item, problem in zip(evidence, side.setup(cases), strict=True):
                        if problem:
                            item.problem.setdefault(side.label, problem)
                active = [i for i in active if not evidence[i].problem]
                log_ratios: dict[int, list[float]] = {i: [] for i in active}
                for index in range(settings.rounds_per_pair):
                    first_is_base = (pairs * settings.rounds_per_pair + index) % 2 == 0  # ABBA across pairs too
                    order = (base, head) if first_is_base else (head, base)
                    results = {side.label: side.time_round(rounds, settings.block_time_s, active) for side in order}
                    for i in active:
                        ratio = _add_round(evidence[i], results[base.label][i], results[head.label][i], base.label,
                                           head.label, settings.measure)  # fmt: skip
                        if ratio is not None:
                            log_ratios[i].append(math.log(ratio))
                    rounds += 1
                how = {base.label: base.how, head.label: head.how}
                conditions = {base.label: base.conditions, head.label: head.conditions}
            finally:
                base.close()
                head.close()
            for i, values in log_ratios.items():
                if values and not evidence[i].problem:
                    evidence[i].pair_log_ratios.append(float(np.median(values)))
            pairs += 1
            if on_pair:
                on_pair(pairs, len(active))
            if pairs in looks:
                _judge_all(evidence, settings, level, final=False)
                spent = clock() - started
                next_look = next((look for look in looks if look > pairs), None)
                undecided = any(not item.problem and not item.decided for item in evidence)
                if undecided and next_look is not None and spent / pairs * next_look > settings.budget_s:
                    stop = f"time budget: the next look ({next_look} pairs) would pass {settings.budget_s:g} s (--budget)"
                    break
    except KeyboardInterrupt:
        interrupted, stop = True, f"interrupted after {pairs} worker pairs (the verdicts are one look more than alpha was split over)"
    except ABError as exc:
        error, stop = str(exc), f"stopped after {pairs} worker pairs: a side failed"
    _judge_all(evidence, settings, level, final=True)
    return ABOutcome(settings, evidence, pairs, rounds, stop, clock() - started, level, how, interrupted, conditions, error)


def _add_round(item: CaseEvidence, base: RoundData | str | None, head: RoundData | str | None, base_label: str,
               head_label: str, measure: str) -> float | None:  # fmt: skip
    """Record one round of a case; its ratio head/base in ``measure``, or None where a side gave none."""
    for label, data in ((base_label, base), (head_label, head)):
        if isinstance(data, str):
            item.problem.setdefault(label, data)
    if not (isinstance(base, tuple) and isinstance(head, tuple)) or item.problem:
        return None
    base_time, head_time = round_value(base[0], base[1], "time"), round_value(head[0], head[1], "time")
    item.base_times.append(base_time)
    item.head_times.append(head_time)
    if measure == "time":
        return head_time / base_time
    return round_value(head[0], head[1], measure) / round_value(base[0], base[1], measure)


def _judge_all(evidence: Sequence[CaseEvidence], settings: ABSettings, level: float, *, final: bool) -> None:
    """Judge every case still undecided (at a look, or at the end: whatever was measured)."""
    for item in evidence:
        if item.problem or item.decided or not item.pair_log_ratios:
            continue
        if not final or item.judgement is None or len(item.pair_log_ratios) != item.judgement.n_base:
            item.judgement = judge.judge_log_ratios(item.pair_log_ratios, settings.threshold, level,
                                                    test="wilcoxon signed-rank, worker pairs")  # fmt: skip


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
    from dropblock_bench.compare import CaseComparison, Comparison, condition_differences
    from dropblock_bench.run.rounds import MEASURE_WORDS

    cases: list[CaseComparison] = []
    failing: dict[str, str] = {}
    still_failing: dict[str, str] = {}
    only_base: list[str] = []
    only_head: list[str] = []
    skipped_both: list[str] = []
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
        elif head_problem and base_problem:
            skipped_both.append(f"{name} ({head_problem.split(': ', 1)[-1]})")
        elif item.judgement is not None and not base_problem:
            j = item.judgement
            note = f"about {j.rounds_needed} worker pairs would decide" if j.verdict == judge.INCONCLUSIVE and j.rounds_needed else ""
            cases.append(CaseComparison(key=name, base_median_ms=median_or_nan(item.base_times),
                                        head_median_ms=median_or_nan(item.head_times), ratio=j.ratio, ratio_ci_low=j.ci_low,
                                        ratio_ci_high=j.ci_high, p_value=j.p_value, n_base=j.n_base, n_head=j.n_head,
                                        test=j.test, verdict=j.verdict, note=note, rounds_needed=j.rounds_needed))  # fmt: skip
    settings = outcome.settings
    ratios = [c.ratio for c in cases if c.ratio > 0]
    sides = "; ".join(f"{label}: {how}" for label, how in outcome.how.items())
    evidence = (f"{outcome.pairs} pairs of fresh workers, {settings.rounds_per_pair} interleaved rounds each (ABBA), each pair's"
                f" median ratio one replicate; measure: {MEASURE_WORDS[settings.measure]}; {sides}")  # fmt: skip
    warnings = []
    if any(c.verdict == judge.INCONCLUSIVE for c in cases):
        warnings.append("some cases are inconclusive: give them more worker pairs or time (--max-pairs, --budget)")
    if skipped_both:
        warnings.append(f"{len(skipped_both)} case(s) skipped on both sides: " + "; ".join(skipped_both))
    if outcome.error:
        warnings.append(f"the pairs stopped early: {outcome.error}")
    differences = condition_differences(*({"meta": outcome.conditions.get(label, {})} for label in (base_label, head_label)))
    if differences:
        warnings.append("base and head ran under different conditions (" + "; ".join(differences) + "): a difference in"
                        " time may come from those, not from the code")  # fmt: skip
    return Comparison(
        cases=cases, only_in_base=sorted(only_base), only_in_head=sorted(only_head),
        geomean_ratio=math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else None,
        threshold=settings.threshold, alpha=settings.alpha, warnings=warnings, failing=failing, still_failing=still_failing,
        evidence=evidence, level=outcome.level, stop=outcome.stop_reason,
    )  # fmt: skip
