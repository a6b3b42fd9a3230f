"""``dbench ab``: interleaved paired rounds, adaptive stop, and the verdicts of compare."""

from __future__ import annotations

import json
import math
import random
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dropblock_bench.cli import app
from dropblock_bench.run import ab
from dropblock_bench.run.matrix import RunCase

CASES = [RunCase(name, "cpu", "float32", (2, 4, 12, 12), 3, 0.1, "forward") for name in ("fused", "paper")]
DBENCH = str(Path(sys.executable).parent / "dbench")


class FakeSide:
    """A side whose case i takes ``factors[i]`` ms a round, times log-normal noise and a
    process effect (one log-normal draw of ``process`` per side object, as a fresh worker
    draws its placement); records the order in which sides ran in ``log``."""

    how = "fake"

    def __init__(self, label: str, factors: Sequence[float], log: list[str], noise: float = 0.01, seed: int = 0,
                 problems: Sequence[str | None] | None = None, process: float = 0.0) -> None:  # fmt: skip
        self.rng = random.Random(seed)
        self.label, self.log, self.noise = label, log, noise
        effect = math.exp(self.rng.gauss(0.0, process))
        self.factors = [factor * effect for factor in factors]
        self.problems = list(problems or [None] * len(factors))
        self.closed = False
        self.conditions: dict = {"torch_version": "2.13.0", "threads": 2}

    def setup(self, cases: Sequence[RunCase]) -> list[str | None]:
        return self.problems

    def time_round(self, index: int, block_time_s: float, active: Sequence[int]) -> list:
        self.log.append(self.label)
        out: list = [None] * len(self.factors)
        for i in active:
            value = self.factors[i] * math.exp(self.rng.gauss(0.0, self.noise))
            out[i] = ([value, value], [1.0])
        return out

    def close(self) -> None:
        self.closed = True


def _pairs(base_factors, head_factors, log, **kwargs):
    """A factory of fresh fake sides, each pair drawing new seeds (and process effects)."""
    seeds = iter(range(0, 10_000, 2))

    def open_pair():
        seed = next(seeds)
        return (FakeSide("base", base_factors, log, seed=seed, **kwargs), FakeSide("head", head_factors, log, seed=seed + 1, **kwargs))

    return open_pair


def test_a_slowdown_is_found_at_the_first_look_and_the_order_alternates():
    log: list[str] = []
    outcome = ab.run_ab(CASES, _pairs([1.0, 1.0], [1.3, 1.0], log), ab.ABSettings())
    assert outcome.pairs == 16 and outcome.rounds == 16 * 16 and "every case decided" in outcome.stop_reason
    assert log[:4] == ["base", "head", "head", "base"]  # ABBA within a pair
    verdicts = [item.judgement.verdict for item in outcome.evidence if item.judgement]
    assert verdicts == ["regression", "~"]
    comparison = ab.ab_comparison(outcome)
    assert comparison.failed and [c.key.split()[0] for c in comparison.regressions] == ["fused"]
    assert "16 pairs of fresh workers" in comparison.evidence
    assert comparison.level == pytest.approx(0.01 / (2 * 2))  # looks at 16 and 32 pairs


def test_a_process_effect_makes_no_false_verdict():
    """Each fresh worker draws its own placement (8 % spread, far above the 1 % round noise):
    identical code gives no regression or improvement, since the pair is the replicate."""
    verdicts = []
    for trial in range(10):
        log: list[str] = []
        factory = _pairs([1.0], [1.0], log, process=0.08)
        for _ in range(trial):
            factory()
        outcome = ab.run_ab(CASES[:1], factory, ab.ABSettings(max_pairs=32))
        verdicts += [item.judgement.verdict for item in outcome.evidence if item.judgement]
    assert not {"regression", "improvement"} & set(verdicts)


def test_undecided_cases_run_on_and_end_inconclusive_never_same():
    log: list[str] = []
    settings = ab.ABSettings(max_pairs=32, first_look=16)
    outcome = ab.run_ab(CASES, _pairs([1.0, 1.0], [1.05, 1.0], log, noise=0.3), settings)
    assert outcome.pairs == 32 and "reached 32 worker pairs" in outcome.stop_reason
    comparison = ab.ab_comparison(outcome)
    assert comparison.inconclusive and all(c.verdict != "~" or c.ratio_ci_high < 1.05 for c in comparison.cases)
    assert all(c.rounds_needed for c in comparison.inconclusive)


def test_the_budget_stops_the_rounds_at_a_look():
    log: list[str] = []
    settings = ab.ABSettings(budget_s=600.0)  # 1 s a side a round: 512 s at the first look, 1024 s at the next
    outcome = ab.run_ab(CASES[:1], _pairs([1.0], [1.0], log, noise=0.3), settings, clock=lambda: float(len(log)))
    assert outcome.pairs == 16 and "time budget" in outcome.stop_reason


def test_a_case_raising_on_the_head_only_is_failing():
    log: list[str] = []

    def open_pair():
        return (FakeSide("base", [1.0, 1.0], log, problems=[None, "error: ValueError: base broke"]),
                FakeSide("head", [1.0, 1.0], log, seed=1, problems=["error: RuntimeError: kaboom", None]))  # fmt: skip

    outcome = ab.run_ab(CASES, open_pair, ab.ABSettings())
    assert "no case runs on both sides" in outcome.stop_reason
    comparison = ab.ab_comparison(outcome)
    assert list(comparison.failing.values()) == ["RuntimeError: kaboom"] and comparison.failed
    assert comparison.only_in_head == [ab.case_name(CASES[1])] and comparison.cases == []


def test_sides_under_different_conditions_are_warned_about():
    def open_pair():
        base, head = FakeSide("base", [1.0], []), FakeSide("head", [1.0], [], seed=1)
        head.conditions = {"torch_version": "2.14.1", "threads": 2}
        return base, head

    comparison = ab.ab_comparison(ab.run_ab(CASES[:1], open_pair, ab.ABSettings(max_pairs=2)))
    assert any("different conditions (torch: 2.13.0 vs 2.14.1)" in warning for warning in comparison.warnings)


def test_run_arguments_pass_what_was_given_as_dbench_run_flags():
    given = {"--impl": ["fused", "paper"], "--shape": None, "--mode": "fwd", "--inplace": True, "--threads": 2, "--exclude": [],
             "--block-size": None, "--malloc": "steady", "--dtype": False}  # fmt: skip
    assert ab.run_arguments(given) == ["--impl", "fused", "--impl", "paper", "--mode", "fwd", "--inplace", "--threads", "2",
                                       "--malloc", "steady"]  # fmt: skip


def _old_dbench(tmp_path: Path) -> str:
    """An executable that answers like a dbench without a worker: `worker` is an unknown
    command (exit 2); `run --json F` writes one round of the fused case, 1 ms against a 1 ms floor."""
    script = tmp_path / "old-dbench"
    case = {"implementation": "fused", "device": "cpu", "dtype": "float32", "shape": "2x4x12x12", "block_size": 3, "p": 0.1,
            "mode": "forward", "inplace": False, "status": "ok", "samples_ms": [1.0], "floor_samples_ms": [1.0]}  # fmt: skip
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, sys
        args = sys.argv[1:]
        if args[0] != "run":
            print("Error: No such command", repr(args[0]), file=sys.stderr)
            sys.exit(2)
        with open(args[args.index("--json") + 1], "w") as handle:
            json.dump({{"meta": {{}}, "cases": [{case!r}]}}, handle)
        """))
    script.chmod(0o755)
    return str(script)


def test_a_dbench_without_a_worker_is_driven_one_run_per_round(tmp_path):
    old = _old_dbench(tmp_path)
    assert ab.WorkerSide.start("base", [old], {}) is None
    side = ab.open_side("base", [old], {}, ["--impl", "fused"])
    assert isinstance(side, ab.RunPerRoundSide)
    assert side.setup(CASES) == [None, None]
    first = side.time_round(0, 0.01, [0, 1])
    assert first[0] == ([1.0], [1.0]) and first[1] == "missing: this dbench did not run the case"
    side.close()


def test_a_side_that_is_not_an_executable_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["ab", "--base", str(tmp_path / "nothing"), "--head", DBENCH])
    assert result.exit_code == 2 and "not an executable" in result.output and "Traceback" not in result.output


def test_dbench_ab_end_to_end_with_two_workers(tmp_path):
    """Both sides this very dbench: every case is timed by two live workers and written out."""
    out = tmp_path / "ab.json"
    result = CliRunner().invoke(app, ["ab", "--base", DBENCH, "--head", DBENCH, "--impl", "fused", "--shape", "2x4x12x12",
                                      "--block-size", "3", "--mode", "fwd", "--block-time", "0.002", "--max-pairs", "2",
                                      "--json", str(out), "--format", "markdown"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "### dbench ab:" in result.output and "base: worker" in result.output
    payload = json.loads(out.read_text())
    [case] = payload["cases"]
    assert case["n_base"] == case["n_head"] == 2 and case["verdict"] == "inconclusive"  # 2 pairs can decide nothing
    assert "reached 2 worker pairs" in payload["stop"]


class _FailingSide(FakeSide):
    """A fake side whose worker dies in its third pair."""

    pairs_opened = 0

    def setup(self, cases):
        type(self).pairs_opened += 1
        return super().setup(cases)

    def time_round(self, index, block_time_s, active):
        if type(self).pairs_opened >= 3:
            raise ab.ABError("head: the worker exited (exit code -11): Segmentation fault")
        return super().time_round(index, block_time_s, active)


def test_a_side_failing_midway_keeps_what_was_measured():
    log: list[str] = []
    outcome = ab.run_ab(CASES[:1], lambda: (FakeSide("base", [1.0], log), _FailingSide("head", [1.0], log, seed=1)),
                        ab.ABSettings())  # fmt: skip
    assert outcome.error is not None and "Segmentation fault" in outcome.error and outcome.pairs == 2
    comparison = ab.ab_comparison(outcome)
    assert [c.n_base for c in comparison.cases] == [2] and any("stopped early" in w for w in comparison.warnings)


def test_a_case_skipped_on_both_sides_is_said():
    def open_pair():
        return (FakeSide("base", [1.0, 1.0], [], problems=[None, "skipped: cuda is not available"]),
                FakeSide("head", [1.0, 1.0], [], seed=1, problems=[None, "skipped: cuda is not available"]))  # fmt: skip

    comparison = ab.ab_comparison(ab.run_ab(CASES, open_pair, ab.ABSettings(max_pairs=2)))
    assert any("1 case(s) skipped on both sides" in w and "cuda is not available" in w for w in comparison.warnings)


def test_a_command_that_answers_nonsense_is_an_error(tmp_path):
    chatty = tmp_path / "chatty"
    chatty.write_text(f"#!{sys.executable}\nimport time\nprint('hello there', flush=True)\ntime.sleep(30)\n")
    chatty.chmod(0o755)
    with pytest.raises(ab.ABError, match="answered 'hello there'"):
        ab.WorkerSide.start("head", [str(chatty)], {})


@pytest.mark.parametrize(("option", "value"), [("--alpha", "0"), ("--alpha", "1.5"), ("--threshold", "-1")])
def test_bad_settings_are_one_line_before_anything_starts(option, value):
    result = CliRunner().invoke(app, ["ab", "--base", DBENCH, "--head", DBENCH, option, value])
    assert result.exit_code == 2 and option in result.output and "Traceback" not in result.output
