"""`dbench run` and `dbench merge` end to end on tiny matrices."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from dropblock_bench.cli import app
from dropblock_bench.run import timing
from dropblock_bench.run.files import CSV_COLUMNS

runner = CliRunner()
TINY = ["--shape", "2x4x12x12", "--block-size", "3", "--min-time", "0.02", "--no-memory"]


@pytest.fixture(autouse=True)
def _no_process_wide_malloc_change(monkeypatch):
    """`--malloc steady` (the default) tunes glibc for the whole process; in-process CLI runs
    here must not change the allocator under later tests (tests/test_allocator.py covers the
    real call in a subprocess)."""
    from dropblock_bench.run import allocator

    monkeypatch.setattr(allocator, "steady_glibc_malloc", lambda: "steady (stub)")


def test_tiny_run_writes_table_csv_and_json(tmp_path):
    result = runner.invoke(
        app,
        ["run", "--impl", "paper,fused", *TINY, "--mode", "both", "--csv", str(tmp_path / "o.csv"), "--json", str(tmp_path / "o.json")],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    assert "2x4x12x12" in result.output and "×floor" in result.output
    assert "4 cases: 4 ok, 0 skipped, 0 error" in result.output
    rows = list(csv.DictReader((tmp_path / "o.csv").open()))
    assert [(r["implementation"], r["mode"]) for r in rows] == [("paper", "forward"), ("fused", "forward"), ("paper", "backward"), ("fused", "backward")]
    payload = json.loads((tmp_path / "o.json").read_text())
    assert len(payload["cases"]) == 4 and payload["meta"]["tool"] == "dbench run"
    assert all(case["samples_ms"] for case in payload["cases"])
    from dropblock_bench.implementations import fused

    assert payload["meta"]["backends"] == {"fused": fused.backend_status()}  # from the record, not by name
    assert "fused: CPU: " in result.output
    assert set(payload["meta"]["memory"]) == {"malloc", "thp_mode", "torch_thp_alloc", "fused_huge_pages"}


def test_runs_without_fused_say_nothing_about_its_backend(tmp_path):
    result = runner.invoke(app, ["run", "--impl", "paper", *TINY, "--json", str(tmp_path / "o.json")])
    assert result.exit_code == 0, result.output
    assert "CPU: " not in result.output
    assert "backends" not in json.loads((tmp_path / "o.json").read_text())["meta"]


def test_the_allocator_regime_is_recorded_and_can_be_the_systems(tmp_path):
    steady = runner.invoke(app, ["run", "--impl", "fused", *TINY, "--json", str(tmp_path / "a.json")], env={"COLUMNS": "200"})
    assert steady.exit_code == 0 and "allocator: steady (stub)" in steady.output
    assert json.loads((tmp_path / "a.json").read_text())["meta"]["memory"]["malloc"] == "steady (stub)"
    system = runner.invoke(app, ["run", "--impl", "fused", *TINY, "--malloc", "system", "--json", str(tmp_path / "b.json")])
    assert system.exit_code == 0 and "allocator:" not in system.output
    assert json.loads((tmp_path / "b.json").read_text())["meta"]["memory"]["malloc"].startswith("system")


def test_absent_device_is_skipped_not_a_crash(tmp_path):
    result = runner.invoke(app, ["run", "--impl", "fused", *TINY, "--device", "cpu,cuda:7"])
    assert result.exit_code == 0, result.output
    assert "skipped 1 case" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--family", "dropblock2d", "--shape", "2x4x12"], "dropblock2d takes NxCxHxW shapes"),
        (["--impl", "dropblock3d", "--shape", "2x4x12x12"], "dropblock3d takes NxCxDxHxW shapes"),
        (["--family", "cutout", "--preset", "resnet50"], "no preset 'resnet50' for cutout: use quick, cifar, imagenet"),
        (["--dtype", "int8"], "unknown dtype"),
        (["--device", "tpu"], "unknown device"),
        (["--p", "1.5"], "outside [0, 1]"),
        (["--block-size", "0"], "positive integer"),
        (["--shard", "3/2"], "I/N"),
        (["--preset", "huge"], "no preset 'huge'"),
        (["--holes", "0"], "bad number of holes"),
        (["--impl", "papr"], "did you mean paper"),
        (["--exclude", "colour=red"], "FIELD=VALUES"),
        (["--exclude", "dtype=int8"], "unknown dtype"),
        (["--malloc", "jemalloc"], "unknown --malloc"),
        (["--rounds", "0"], "--rounds"),
        (["--shape", "2x4x12x12²"], "sizes joined by x"),
        (["--block-size", "7²"], "positive integer"),
        (["--json", "/proc/no/such.json"], "cannot write --json"),
        (["--csv", "."], "is a folder; name a file, e.g. out.csv"),
        (["--json", "/dev/null"], "is not a regular file"),
    ],
)
def test_bad_input_is_one_line_and_exit_two(args, message):
    result = runner.invoke(app, ["run", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_rounds_split_each_case_into_that_many_turns(tmp_path):
    out = tmp_path / "run.json"
    result = runner.invoke(app, ["run", "--impl", "fused", *TINY, "--rounds", "5", "--json", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["meta"]["rounds"] == 5
    [case] = payload["cases"]
    assert len(case["samples_per_round"]) == len(case["floor_samples_per_round"]) == 5  # the run had 5 rounds
    assert all(len(c["samples_ms"]) >= 5 and len(c["floor_samples_ms"]) >= 5 for c in payload["cases"])


def test_exclude_leaves_out_the_matching_cases(tmp_path):
    out = tmp_path / "run.json"
    args = ["run", "--impl", "fused,fused-shared", "--shape", "1x2x8x8", "--block-size", "3", "--dtype", "float32,bfloat16",
            "--min-time", "0.01", "--no-memory", "--exclude", "impl=*-shared dtype=bf16", "--json", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    cases = {(c["implementation"], c["dtype"]) for c in json.loads(out.read_text())["cases"]}
    assert cases == {("fused", "float32"), ("fused", "bfloat16"), ("fused-shared", "float32")}
    everything = runner.invoke(app, [*args[:-2], "--exclude", "mode=forward"])
    assert everything.exit_code == 0 and "empty after --exclude" in everything.output


def test_shards_then_merge_cover_the_whole_matrix(tmp_path):
    args = ["run", "--impl", "fused,fused-shared", "--shape", "1x2x8x8,1x2x9x9,1x2x10x10", "--block-size", "3", "--min-time", "0.01", "--no-memory"]
    for index in (1, 2):
        result = runner.invoke(app, [*args, "--shard", f"{index}/2", "--json", str(tmp_path / f"s{index}.json")])
        assert result.exit_code == 0, result.output
    merged = runner.invoke(app, ["merge", str(tmp_path / "s1.json"), str(tmp_path / "s2.json"), "-o", str(tmp_path / "all.json")])
    assert merged.exit_code == 0, merged.output
    cases = json.loads((tmp_path / "all.json").read_text())["cases"]
    assert sorted((c["implementation"], c["shape"]) for c in cases) == sorted(
        (impl, shape) for impl in ("fused", "fused-shared") for shape in ("1x2x8x8", "1x2x9x9", "1x2x10x10")
    )
    bad = runner.invoke(app, ["merge", str(tmp_path / "missing.json"), "-o", str(tmp_path / "new" / "x.json")])
    assert bad.exit_code == 2 and "file not found" in bad.output
    assert not (tmp_path / "new").exists()  # inputs are checked before the output's folder is made


def test_ctrl_c_keeps_finished_cases_on_disk(tmp_path, monkeypatch):
    real = timing.run_group
    calls = {"n": 0}

    def interrupt_on_second_setting(cases, impls, settings, on_start=None):  # a setting: fused and paper
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(cases, impls, settings, on_start)

    monkeypatch.setattr(timing, "run_group", interrupt_on_second_setting)
    result = runner.invoke(
        app,
        ["run", "--impl", "fused,paper", *TINY, "--mode", "both", "--csv", str(tmp_path / "o.csv"), "--json", str(tmp_path / "o.json")],
    )
    assert result.exit_code == 130
    assert "interrupted after 2 of 4 cases" in result.output
    assert len(list(csv.DictReader((tmp_path / "o.csv").open()))) == 2
    assert len(json.loads((tmp_path / "o.json").read_text())["cases"]) == 2


def test_help_names_every_familys_presets():
    from dropblock_bench.run.matrix import PRESETS

    help_text = " ".join(runner.invoke(app, ["run", "--help"], terminal_width=400).output.split())
    for family, presets in PRESETS.items():
        for name in presets:
            assert name in help_text, (family, name)


USER_FILE = """
from dropblock_bench import drop_block2d


def drop(x, p, block_size):
    return drop_block2d(x, p, block_size)


def broken(x, p, block_size):
    raise RuntimeError("kaboom")
"""


def test_a_users_file_callable_is_timed_whatever_comes_first(tmp_path):
    (tmp_path / "mine.py").write_text(USER_FILE)
    for impl in (f"{tmp_path / 'mine.py'}:drop", f"paper,{tmp_path / 'mine.py'}:drop"):
        result = runner.invoke(app, ["run", "--impl", impl, *TINY, "--json", str(tmp_path / "run.json")])
        assert result.exit_code == 0, result.output
        cases = json.loads((tmp_path / "run.json").read_text())["cases"]
        assert [c["status"] for c in cases if c["implementation"].endswith("mine.py:drop")] == ["ok"]


def test_a_case_that_raises_is_written_and_the_run_exits_one(tmp_path):
    (tmp_path / "mine.py").write_text(USER_FILE)
    out = tmp_path / "run.json"
    result = runner.invoke(app, ["run", "--impl", f"fused,{tmp_path / 'mine.py'}:broken", *TINY, "--json", str(out)])
    assert result.exit_code == 1, result.output
    assert "2 cases: 1 ok, 0 skipped, 1 error" in result.output
    statuses = {c["implementation"].rpartition("/")[2]: (c["status"], c["reason"]) for c in json.loads(out.read_text())["cases"]}
    assert statuses["fused"][0] == "ok" and statuses["mine.py:broken"] == ("error", "RuntimeError: kaboom")


def test_repeated_values_are_timed_once(tmp_path):
    out = tmp_path / "run.json"
    args = ["--shape", "1x2x8x8,1x2x8x8", "--block-size", "3,3", "--p", "0.1,0.10", "--min-time", "0.01", "--no-memory"]
    result = runner.invoke(app, ["run", "--impl", "fused", *args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert len(json.loads(out.read_text())["cases"]) == 1


def test_an_empty_shard_writes_a_file_merge_takes(tmp_path):
    args = ["run", "--impl", "fused", "--shape", "1x2x8x8", "--block-size", "3", "--min-time", "0.01", "--no-memory"]
    for index in (1, 2):
        result = runner.invoke(app, [*args, "--shard", f"{index}/2", "--json", str(tmp_path / f"s{index}.json")])
        assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "s2.json").read_text())["cases"] == []
    merged = runner.invoke(app, ["merge", str(tmp_path / "s1.json"), str(tmp_path / "s2.json"), "-o", str(tmp_path / "all.json")])
    assert merged.exit_code == 0, merged.output
    assert len(json.loads((tmp_path / "all.json").read_text())["cases"]) == 1


def test_an_empty_first_shard_does_not_blank_the_merged_settings_and_csv_is_a_header(tmp_path):
    args = ["run", "--impl", "fused", "--shape", "1x2x8x8", "--block-size", "3", "--min-time", "0.01", "--no-memory"]
    (tmp_path / "s2.csv").write_text("stale,rows\n1,2\n")
    for index in (1, 2):
        result = runner.invoke(app, [*args, "--shard", f"{index}/2", "--json", str(tmp_path / f"s{index}.json"),
                                     "--csv", str(tmp_path / f"s{index}.csv")])  # fmt: skip
        assert result.exit_code == 0, result.output
    assert (tmp_path / "s2.csv").read_text().splitlines() == [",".join(CSV_COLUMNS)]
    merged = runner.invoke(app, ["merge", str(tmp_path / "s2.json"), str(tmp_path / "s1.json"), "-o", str(tmp_path / "all.json")])
    assert merged.exit_code == 0, merged.output
    meta = json.loads((tmp_path / "all.json").read_text())["meta"]
    assert meta["rounds"] == 8 and meta["memory"]["malloc"] == "steady (stub)"


def test_one_file_for_two_outputs_is_refused(tmp_path):
    same = str(tmp_path / "out")
    result = runner.invoke(app, ["run", "--impl", "fused", *TINY, "--json", same, "--csv", same])
    assert result.exit_code == 2 and "--json and --csv name the same file" in result.output


def test_merge_names_a_case_repeated_within_one_file(tmp_path):
    out = tmp_path / "run.json"
    assert runner.invoke(app, ["run", "--impl", "fused", "--shape", "1x2x8x8", "-k", "3", "--min-time", "0.01", "--no-memory",
                               "--json", str(out)]).exit_code == 0  # fmt: skip
    payload = json.loads(out.read_text())
    payload["cases"] *= 2
    out.write_text(json.dumps(payload))
    result = runner.invoke(app, ["merge", str(out), "-o", str(tmp_path / "m.json")])
    assert result.exit_code == 2 and "appears twice in" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["merge", "{run}", "-o", "/proc/no/such.json"], "cannot write --output"),
        (["compare", "{run}", "{run}", "--json", "{tmp}"], "is a folder"),
        (["compare", "{run}", "{run}", "--csv", "/proc/no/such.csv"], "cannot write --csv"),
        (["report", "{run}", "-o", "{run}"], "is a file; name a folder"),
        (["verify", "--quick", "--impl", "fused", "--json", "/proc/no/such.json"], "cannot write --json"),
        (["show", "--png", "/proc/no/such.png"], "cannot write --png"),
        (["show", "--impl", "fused*"], "show draws one"),
    ],
)
def test_outputs_that_cannot_be_written_are_exit_two_before_any_work(tmp_path, args, message):
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"meta": {"tool": "dbench run"}, "cases": []}))
    result = runner.invoke(app, [a.format(run=run, tmp=tmp_path) for a in args], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_noise_flags_and_machine_load_are_in_the_files(tmp_path):
    result = runner.invoke(app, ["run", "--impl", "fused", *TINY, "--json", str(tmp_path / "o.json"), "--csv", str(tmp_path / "o.csv")])
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "o.json").read_text())
    [case] = payload["cases"]
    assert set(case["noise"].split(";")) <= {"", "spread", "floor-drift"}
    assert "noise" in next(csv.DictReader((tmp_path / "o.csv").open()))
    load = payload["meta"]["machine_load"]
    assert set(load) == {"cpus", "load_avg_start", "cpu_governor", "cpu_mhz", "load_avg_end", "other_cpu_share"}
    assert load["other_cpu_share"] is None or 0.0 <= load["other_cpu_share"] <= 1.0  # written at the end of the run


def test_a_flagged_case_is_marked_in_the_table_and_written(tmp_path, monkeypatch):
    from dropblock_bench.run import noise

    monkeypatch.setattr(noise, "noise_flags", lambda timing: ["spread"])
    result = runner.invoke(app, ["run", "--impl", "fused", *TINY, "--json", str(tmp_path / "o.json")], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "~" in next(line for line in result.output.splitlines() if line.strip().startswith("fused "))
    assert "~: noisy" in result.output
    assert [case["noise"] for case in json.loads((tmp_path / "o.json").read_text())["cases"]] == ["spread"]


@pytest.mark.parametrize(("share", "warned"), [(0.9, True), (0.01, False)])
def test_a_busy_machine_gets_one_warning_line(tmp_path, monkeypatch, share, warned):
    from dropblock_bench.run import machine_load

    monkeypatch.setattr(machine_load, "other_cpu_share", lambda start, end: share)
    result = runner.invoke(app, ["run", "--impl", "fused", *TINY, "--json", str(tmp_path / "o.json")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    if warned:
        assert warnings == ["warning: busy machine, times may not reproduce: other processes took 90% of the CPUs during the run (over 10%)"]
    else:
        assert warnings == []
    assert json.loads((tmp_path / "o.json").read_text())["meta"]["machine_load"]["other_cpu_share"] == share
