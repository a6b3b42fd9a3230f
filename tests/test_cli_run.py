"""`dbench run` and `dbench merge` end to end on tiny matrices."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from dropblock_bench import timing
from dropblock_bench.cli import app

runner = CliRunner()
TINY = ["--shape", "2x4x12x12", "--block-size", "3", "--min-time", "0.02", "--no-memory"]


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
    from dropblock_bench.implementations import fused_cpu

    assert payload["meta"]["fused_cpu_backend"] == fused_cpu.status()
    assert "fused on CPU:" in result.output
    assert set(payload["meta"]["memory"]) == {"malloc", "thp_mode", "torch_thp_alloc", "fused_huge_pages"}


def test_runs_without_fused_say_nothing_about_its_backend(tmp_path):
    result = runner.invoke(app, ["run", "--impl", "paper", *TINY, "--json", str(tmp_path / "o.json")])
    assert result.exit_code == 0, result.output
    assert "fused on CPU" not in result.output
    assert "fused_cpu_backend" not in json.loads((tmp_path / "o.json").read_text())["meta"]


def test_the_allocator_regime_is_recorded_and_can_be_the_systems(tmp_path, monkeypatch):
    from dropblock_bench import allocator

    monkeypatch.setattr(allocator, "steady_glibc_malloc", lambda: "steady (stub)")
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
        (["--shape", "2x4x12"], "NxCxHxW"),
        (["--dtype", "int8"], "unknown dtype"),
        (["--device", "tpu"], "unknown device"),
        (["--p", "1.5"], "outside [0, 1]"),
        (["--block-size", "0"], "positive integer"),
        (["--shard", "3/2"], "I/N"),
        (["--preset", "huge"], "unknown preset"),
        (["--impl", "papr"], "did you mean paper"),
        (["--exclude", "colour=red"], "FIELD=VALUES"),
        (["--exclude", "dtype=int8"], "unknown dtype"),
        (["--malloc", "jemalloc"], "unknown --malloc"),
        (["--rounds", "0"], "--rounds"),
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
    bad = runner.invoke(app, ["merge", str(tmp_path / "missing.json"), "-o", str(tmp_path / "x.json")])
    assert bad.exit_code == 2 and "file not found" in bad.output


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


def test_help_names_the_quick_presets_shapes():
    from dropblock_bench.matrix import PRESETS

    help_text = " ".join(runner.invoke(app, ["run", "--help"], terminal_width=400).output.split())
    for shape in PRESETS["quick"]["shapes"]:
        assert "x".join(map(str, shape)) in help_text
