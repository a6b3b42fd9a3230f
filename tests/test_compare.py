"""`dbench compare`: regressions fail the build, noise does not, bad input is exit 2."""

from __future__ import annotations

import csv
import json
import math
import random
import re
import statistics
from pathlib import Path

import pytest
from scipy import stats
from typer.testing import CliRunner

from dropblock_bench.cli import app
from dropblock_bench.compare import (
    Timings,
    compare_case,
    compare_files,
    compare_implementations,
)
from dropblock_bench.run.judge import decide, smallest_unpaired_p

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def _case(name: str, samples: list[float], shape: str = "8x64x28x28") -> dict:
    """A run-file case whose every sample is one round, each with a floor block of 1 ms (so a
    round's ratio to the floor is its time)."""
    n = len(samples)
    return {
        "implementation": name, "device": "cpu", "dtype": "float32", "shape": shape, "block_size": 7, "p": 0.1,
        "mode": "forward", "inplace": False, "status": "ok", "median_ms": sorted(samples)[n // 2], "samples_ms": samples,
        "samples_per_round": [1] * n, "floor_samples_ms": [1.0] * n, "floor_samples_per_round": [1] * n,
    }  # fmt: skip


def _run_file(path, cases) -> str:
    path.write_text(json.dumps({"meta": {"tool": "dbench run"}, "cases": cases}))
    return str(path)


def _noise(rng: random.Random, n: int, scale: float = 1.0) -> list[float]:
    return [scale * rng.lognormvariate(0.0, 0.1) for _ in range(n)]


@pytest.fixture
def base(tmp_path):
    rng = random.Random(0)
    return _run_file(tmp_path / "base.json", [_case("fused", _noise(rng, 30)), _case("paper", _noise(rng, 30, 10.0))])


def test_the_same_run_twice_exits_zero(base):
    result = runner.invoke(app, ["compare", base, base], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "no significant regression" in result.output and "~" in result.output


def _scaled(base: str, path, *factors: float) -> str:
    """A head file: base's cases with samples and median times each case's factor."""
    cases = json.loads(Path(base).read_text())["cases"]
    for case, factor in zip(cases, factors, strict=True):
        case["samples_ms"] = [s * factor for s in case["samples_ms"]]
        case["median_ms"] *= factor
    return _run_file(path, cases)


def test_samples_scaled_by_1_3_are_a_regression(base, tmp_path):
    head = _scaled(base, tmp_path / "head.json", 1.3, 1.3)
    result = runner.invoke(app, ["compare", base, head], env=WIDE)
    assert result.exit_code == 1, result.output
    assert "2 regression(s)" in result.output and "+30.0%" in result.output
    markdown = runner.invoke(app, ["compare", base, head, "--format", "markdown"])
    assert markdown.exit_code == 1 and "| case | base ms" in markdown.output and "❌ regression" in markdown.output


def test_a_small_slowdown_below_the_threshold_is_noise(tmp_path):
    rng = random.Random(5)
    tight = [1.0 + rng.gauss(0, 0.005) for _ in range(30)], [10.0 + rng.gauss(0, 0.05) for _ in range(30)]
    base = _run_file(tmp_path / "base.json", [_case("fused", tight[0]), _case("paper", tight[1])])
    head = _run_file(tmp_path / "head.json", [_case("fused", [s * 1.03 for s in tight[0]]), _case("paper", [s * 1.03 for s in tight[1]])])
    comparison = compare_files(base, head)
    assert [c.verdict for c in comparison.cases] == ["~", "~"]
    assert all(c.p_value < 0.01 for c in comparison.cases)  # significant, but under 5 %


def test_pure_noise_raises_no_more_alarms_than_the_test_level(tmp_path):
    """A regression needs p < alpha (two-sided) in the slower direction, so under pure noise at
    most alpha / 2 of trials alarm: the count stays within the 99.9 % binomial band of that."""
    rng = random.Random(42)
    trials, alarms = 300, 0
    for trial in range(trials):
        base = _run_file(tmp_path / "b.json", [_case("fused", _noise(rng, 20))])
        head = _run_file(tmp_path / "h.json", [_case("fused", _noise(rng, 20))])
        alarms += bool(compare_files(base, head).regressions)
    assert alarms <= stats.binom.ppf(0.9995, trials, 0.01 / 2)


def test_a_real_speed_up_is_an_improvement_and_exits_zero(base, tmp_path):
    head = _scaled(base, tmp_path / "head.json", 0.7, 0.7)
    assert [c.verdict for c in compare_files(base, head).cases] == ["improvement", "improvement"]
    result = runner.invoke(app, ["compare", base, head, "--format", "markdown"])
    assert result.exit_code == 0 and "✅ faster" in result.output


def test_geomean_is_that_of_the_median_ratios(base, tmp_path):
    comparison = compare_files(base, _scaled(base, tmp_path / "head.json", 1.3, 0.8))
    assert [c.ratio for c in comparison.cases] == pytest.approx([1.3, 0.8])
    assert comparison.geomean_ratio == pytest.approx(math.sqrt(1.3 * 0.8))


def test_ratio_interval_covers_the_true_ratio_and_excludes_one():
    """Independent draws with population medians 1 and 1.3: the (1 - alpha) bootstrap interval of
    the median ratio covers 1.3 in at least the 99.9 % binomial band's share of trials around
    1 - alpha, and (samples of 20 with 10 % spread) excludes 1 in every trial."""
    rng = random.Random(11)
    trials, alpha, covered = 200, 0.01, 0
    for _ in range(trials):
        b, h = _noise(rng, 20), _noise(rng, 20, 1.3)
        case = compare_case(Timings("k", b, statistics.median(b)), Timings("k", h, statistics.median(h)), 0.05, alpha)
        covered += case.ratio_ci_low <= 1.3 <= case.ratio_ci_high
        assert case.ratio_ci_low > 1.0
    assert covered >= stats.binom.ppf(0.0005, trials, 1 - alpha)


@pytest.mark.parametrize(("option", "value"), [("--alpha", "0"), ("--alpha", "1.5"), ("--threshold", "-0.1")])
def test_bad_threshold_or_alpha_exits_two(base, option, value):
    result = runner.invoke(app, ["compare", base, base, option, value], env=WIDE)
    assert result.exit_code == 2 and option in result.output and "Traceback" not in result.output


def test_threshold_and_alpha_are_the_gates(tmp_path):
    rng = random.Random(5)
    tight = [1.0 + rng.gauss(0, 0.005) for _ in range(30)]
    base = _run_file(tmp_path / "base.json", [_case("fused", tight)])
    head = _run_file(tmp_path / "head.json", [_case("fused", [s * 1.03 for s in tight])])
    assert compare_files(base, head).cases[0].verdict == "~"  # +3 % < the 5 % default
    assert compare_files(base, head, threshold=0.02).cases[0].verdict == "regression"
    [case] = compare_files(base, head, threshold=0.02, alpha=1e-30).cases
    assert case.verdict == "inconclusive" and case.p_value >= 1e-30  # significant at 0.01, not at 1e-30: undecided


def test_unmatched_cases_are_listed_and_geomean_reported(base, tmp_path):
    rng = random.Random(1)
    head = _run_file(tmp_path / "head.json", [_case("fused", _noise(rng, 30)), _case("fused-shared", _noise(rng, 30))])
    comparison = compare_files(base, head)
    assert [c.key.split()[0] for c in comparison.cases] == ["fused"]
    assert comparison.only_in_base[0].startswith("paper") and comparison.only_in_head[0].startswith("fused-shared")
    assert comparison.geomean_ratio is not None
    result = runner.invoke(app, ["compare", base, head], env=WIDE)
    assert "only in base" in result.output and "geometric mean" in result.output


def test_too_few_samples_are_warned_about(tmp_path):
    assert smallest_unpaired_p(3, 3) == pytest.approx(0.05)  # one-sided: never below the level 0.01
    base = _run_file(tmp_path / "b.json", [_case("fused", [1.0, 1.1, 0.9])])
    head = _run_file(tmp_path / "h.json", [_case("fused", [2.0, 2.1, 1.9])])
    result = runner.invoke(app, ["compare", base, head], env=WIDE)
    assert result.exit_code == 0  # +100 %, but 3 vs 3 rounds can never reach p < 0.01
    assert "inconclusive" in result.output and "about 6 per side would decide" in result.output


def test_runs_under_different_conditions_are_warned_about(tmp_path):
    rng = random.Random(1)
    samples = _noise(rng, 30)
    cases = [_case("fused", samples)]

    def run(name: str, malloc: str, threads: int) -> str:
        meta = {"tool": "dbench run", "threads": threads, "cpu": "AMD EPYC", "memory": {"malloc": malloc}}
        (tmp_path / name).write_text(json.dumps({"meta": meta, "cases": cases}))
        return str(tmp_path / name)

    same = compare_files(run("a.json", "steady (glibc)", 2), run("b.json", "steady (glibc 2.36)", 2))
    assert not any("different conditions" in warning for warning in same.warnings)
    other = compare_files(run("c.json", "steady (glibc)", 2), run("d.json", "system (as the C library does it)", 4))
    [warning] = [warning for warning in other.warnings if "different conditions" in warning]
    assert "memory regime: steady vs system" in warning and "threads: 2 vs 4" in warning
    result = runner.invoke(app, ["compare", str(tmp_path / "c.json"), str(tmp_path / "d.json")], env=WIDE)
    assert result.exit_code == 0 and "different conditions" in result.output


def _pytest_benchmark_file(path, seconds: list[float], with_data: bool = True) -> str:
    stats = {"median": sorted(seconds)[len(seconds) // 2], "mean": sum(seconds) / len(seconds), "stddev": 0.0001, "rounds": len(seconds)}
    if with_data:
        stats["data"] = seconds
    path.write_text(json.dumps({"machine_info": {}, "benchmarks": [{"name": "test_x", "fullname": "tests/bench/t.py::test_x", "stats": stats}]}))
    return str(path)


def test_pytest_benchmark_files_are_detected_by_content(tmp_path):
    rng = random.Random(3)
    base = _pytest_benchmark_file(tmp_path / "b.json", [s / 1000 for s in _noise(rng, 25)])
    slow = _pytest_benchmark_file(tmp_path / "h.json", [s * 1.5 / 1000 for s in _noise(rng, 25)])
    result = runner.invoke(app, ["compare", base, slow], env=WIDE)
    assert result.exit_code == 1 and "tests/bench/t.py::test_x" in result.output
    summary_only = _pytest_benchmark_file(tmp_path / "s.json", [s * 1.5 / 1000 for s in _noise(rng, 25)], with_data=False)
    [case] = compare_files(base, summary_only).cases
    assert case.test.startswith("welch") and "benchmark-save-data" in case.note


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        ("{oops", "not valid JSON"),
        ('{"something": 1}', "neither a `dbench run --json` file nor a pytest-benchmark"),
        ('{"meta": {}, "cases": [{"implementation": "x", "status": "ok"}]}', "malformed"),
    ],
)
def test_malformed_input_exits_two(base, tmp_path, content, message):
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    result = runner.invoke(app, ["compare", base, str(bad)], env=WIDE)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_nothing_in_common_or_mixed_formats_exit_two(base, tmp_path):
    other = _run_file(tmp_path / "other.json", [_case("fused", [1.0, 2.0], shape="1x1x9x9")])
    assert runner.invoke(app, ["compare", base, other]).exit_code == 2
    pb = _pytest_benchmark_file(tmp_path / "pb.json", [0.001, 0.002])
    result = runner.invoke(app, ["compare", base, pb])
    assert result.exit_code == 2 and "cannot compare" in result.output


def test_a_case_that_ran_in_base_and_raises_in_head_fails_the_comparison(base, tmp_path):
    payload = json.loads(Path(base).read_text())
    broken = dict(payload["cases"][1], status="error", reason="RuntimeError: kaboom", samples_ms=[], median_ms=None)
    head = _run_file(tmp_path / "head.json", [payload["cases"][0], broken])
    comparison = compare_files(base, head)
    assert comparison.regressions == [] and comparison.only_in_base == []
    assert list(comparison.failing.values()) == ["RuntimeError: kaboom"] and comparison.failed
    result = runner.invoke(app, ["compare", base, head], env=WIDE)
    assert result.exit_code == 1 and "kaboom" in result.output and "fail in head" in result.output
    markdown = runner.invoke(app, ["compare", base, head, "--format", "markdown"])
    assert markdown.exit_code == 1 and "case(s) now failing" in markdown.output and "❌ fails in head: RuntimeError: kaboom" in markdown.output
    # failing in both is not news, but it is listed
    both = compare_files(head, head)
    assert not both.failing and list(both.still_failing.values()) == ["RuntimeError: kaboom"] and not both.failed


def test_a_new_case_that_raises_in_head_fails_the_comparison(base, tmp_path):
    payload = json.loads(Path(base).read_text())
    new = dict(payload["cases"][0], implementation="fused-shared", status="error", reason="RuntimeError: a | b", samples_ms=[], median_ms=None)
    head = _run_file(tmp_path / "head.json", [*payload["cases"], new])
    comparison = compare_files(base, head)
    assert list(comparison.failing.values()) == ["RuntimeError: a | b"] and comparison.failed
    markdown = runner.invoke(app, ["compare", base, head, "--format", "markdown", "--csv", str(tmp_path / "c.csv"), "--json", str(tmp_path / "c.json")])
    assert markdown.exit_code == 1
    row = next(line for line in markdown.output.splitlines() if "fails in head" in line)
    assert len(re.split(r"(?<!\\)\|", row)) == 10 and "a \\| b" in row  # 8 cells: the reason's | is escaped
    rows = list(csv.DictReader((tmp_path / "c.csv").open()))
    assert [(r["verdict"], r["note"]) for r in rows if r["verdict"] == "failing"] == [("failing", "RuntimeError: a | b")]
    assert json.loads((tmp_path / "c.json").read_text())["n_failing"] == 1


def test_a_malformed_error_row_is_bad_input(base, tmp_path):
    head = _run_file(tmp_path / "head.json", [{"implementation": "x", "status": "error"}])
    result = runner.invoke(app, ["compare", base, head], env=WIDE)
    assert result.exit_code == 2 and "malformed entry" in result.output and "Traceback" not in result.output
    strings = tmp_path / "strings.json"
    strings.write_text(json.dumps({"meta": {}, "cases": ["oops"]}))
    result = runner.invoke(app, ["compare", base, str(strings)], env=WIDE)
    assert result.exit_code == 2 and "malformed entry" in result.output


def test_an_output_over_an_input_or_another_output_is_refused(base, tmp_path):
    other = tmp_path / "other.json"
    other.write_text(Path(base).read_text())
    for args in (["--json", base], ["--json", str(tmp_path / "o"), "--csv", str(tmp_path / "o")]):
        result = runner.invoke(app, ["compare", base, str(other), *args], env=WIDE)
        assert result.exit_code == 2 and "name the same file" in result.output
    assert runner.invoke(app, ["compare", base, f"{tmp_path}/../{tmp_path.name}/base.json"]).exit_code == 0  # a file vs itself


def test_times_that_are_not_positive_are_bad_input(base, tmp_path):
    zero = _run_file(tmp_path / "zero.json", [_case("fused", [0.0, 0.0, 0.0])])
    result = runner.invoke(app, ["compare", base, zero], env=WIDE)
    assert result.exit_code == 2 and "not > 0 ms" in result.output and "Traceback" not in result.output


def test_rows_say_when_a_welch_test_stands_in(tmp_path):
    rng = random.Random(3)
    seconds = [s / 1000 for s in _noise(rng, 25)]
    base = _pytest_benchmark_file(tmp_path / "b.json", seconds, with_data=False)
    head = _pytest_benchmark_file(tmp_path / "h.json", seconds, with_data=False)
    for output_format in ("table", "markdown"):
        result = runner.invoke(app, ["compare", base, head, "--format", output_format], env=WIDE)
        assert result.exit_code == 0 and "benchmark-save-data" in result.output


def test_the_headline_states_the_threshold_unrounded(base):
    result = runner.invoke(app, ["compare", base, base, "--threshold", "0.025", "--format", "markdown"])
    assert "slower by >= 2.5%" in result.output


def test_a_change_whose_interval_includes_one_is_never_called():
    """Whatever p says, an interval of the ratio that includes 1 keeps a case from being a
    regression; a slowdown whose whole interval lies above 1 is one."""
    assert decide(1.09, 0.99, 1.2, 1e-9, None, 0.05, 0.01) == "inconclusive"
    base = [10.0 + 0.01 * i for i in range(30)]
    slower = [s * 1.2 for s in base]
    case = compare_case(Timings("k", base, statistics.median(base)), Timings("k", slower, statistics.median(slower)), 0.05, 0.01)
    assert case.verdict == "regression" and case.ratio_ci_low is not None and case.ratio_ci_low > 1.0


def _two_implementations(path, factor: float, rounds: int = 16) -> str:
    """One run file where `mine` takes `factor` times `fused`'s time in every round, each round
    slowed as a whole by a shared drift that pairing cancels."""
    rng = random.Random(7)
    drifts = [rng.lognormvariate(0.0, 0.3) for _ in range(rounds)]
    cases = []
    for name, scale in (("fused", 1.0), ("mine", factor)):
        case = _case(name, [scale * d * rng.lognormvariate(0.0, 0.01) for d in drifts])
        case["floor_samples_ms"] = [d for d in drifts]  # the floor drifts with the round
        cases.append(case)
    return _run_file(path, cases)


def test_two_implementations_of_one_run_are_judged_by_paired_rounds(tmp_path):
    slower = _two_implementations(tmp_path / "slower.json", 1.1)
    result = runner.invoke(app, ["compare", slower, "--base-impl", "fused", "--head-impl", "mine"], env=WIDE)
    assert result.exit_code == 1 and "1 regression(s)" in result.output and "paired rounds" in " ".join(result.output.split())
    same = compare_implementations(Path(_two_implementations(tmp_path / "same.json", 1.0)), "fused", "mine")
    assert [c.verdict for c in same.cases] == ["~"]  # 30 % drifts between rounds, cancelled by the pairing
    for args, message in ((["--base-impl", "fused"], "both --base-impl and --head-impl"),
                          ([slower, "--base-impl", "fused", "--head-impl", "mine"], "both --base-impl and --head-impl"),
                          (["--base-impl", "fused", "--head-impl", "nobody"], "no timed case of 'nobody'")):  # fmt: skip
        bad = runner.invoke(app, ["compare", slower, *args], env=WIDE)
        assert bad.exit_code == 2 and message in bad.output and "Traceback" not in bad.output


def test_a_real_run_pairs_two_implementations_end_to_end(tmp_path):
    out = tmp_path / "run.json"
    ran = runner.invoke(app, ["run", "--impl", "fused,paper", "--shape", "2x8x24x24", "--block-size", "5", "--mode", "fwd",
                              "--rounds", "16", "--min-time", "0.08", "--no-memory", "--json", str(out)])  # fmt: skip
    assert ran.exit_code == 0, ran.output
    [case] = compare_implementations(out, "fused", "paper").cases
    assert case.verdict == "regression" and case.n_base == 16  # paper is many times slower than fused


def test_cases_of_other_families_match_by_family_and_arguments(tmp_path):
    """A Cutout and a DropPath case (files carry family and holes) are judged each against its
    own twin, and named by their own arguments."""
    rng = random.Random(3)
    cutout = {**_case("cutout", _noise(rng, 30), "64x3x224x224"), "family": "cutout", "holes": 1, "block_size": 112, "p": 0.0}
    drop_path = {**_case("drop-path", _noise(rng, 30), "64x197x768"), "family": "drop-path", "holes": 0, "block_size": 0}
    base = _run_file(tmp_path / "base.json", [cutout, drop_path])
    slower = {**cutout, "samples_ms": [s * 1.3 for s in cutout["samples_ms"]], "median_ms": cutout["median_ms"] * 1.3}
    two_holes = {**cutout, "holes": 2}  # another setting: not cutout's twin
    head = _run_file(tmp_path / "head.json", [slower, drop_path, two_holes])
    result = runner.invoke(app, ["compare", base, head, "--format", "markdown"])
    assert result.exit_code == 1, result.output
    assert "cutout 64x3x224x224 float32 cpu holes=1 L=112 forward" in result.output
    assert "drop-path 64x197x768 float32 cpu p=0.1 forward" in result.output
    assert "holes=2 L=112" in result.output  # listed only in head
    assert "1 regression" in result.output or "❌ regression" in result.output


def test_family_compares_that_familys_cases_alone(tmp_path):
    rng = random.Random(4)
    cutout = {**_case("cutout", _noise(rng, 30), "64x3x224x224"), "family": "cutout", "holes": 1, "block_size": 112, "p": 0.0}
    fused = _case("fused", _noise(rng, 30))
    base = _run_file(tmp_path / "base.json", [cutout, fused])
    head = _run_file(tmp_path / "head.json", [cutout, {**fused, "samples_ms": [s * 1.5 for s in fused["samples_ms"]]}])
    assert runner.invoke(app, ["compare", base, head]).exit_code == 1  # fused got slower
    result = runner.invoke(app, ["compare", base, head, "--family", "cutout", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    assert "cutout 64x3x224x224" in result.output and "fused" not in result.output
    bad = runner.invoke(app, ["compare", base, head, "--family", "dropout"])
    assert bad.exit_code == 2 and "unknown family 'dropout'" in bad.output
