"""The dbench command line, end to end with Typer's CliRunner."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from dropblock_bench.cli import app

runner = CliRunner()


def test_list_shows_builtins_with_their_contracts():
    result = runner.invoke(app, ["list"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    for name in ("blog-style", "paper", "fused", "fused-shared"):
        assert name in result.output
    assert "naive*" in result.output and "anywhere*" in result.output and "shared*" in result.output


def test_list_json_is_machine_readable():
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0
    payload = json.loads(result.output)
    by_name = {item["name"]: item for item in payload["implementations"]}
    assert by_name["paper"]["departures_from_paper"] == []
    assert by_name["blog-style"]["contract"] == {
        "mask": "shared", "seeds": "anywhere", "gamma": "naive", "norm": "batch",
        "anchor": "centre", "clamp": "min", "batch": "per-sample",
    }  # fmt: skip
    assert by_name["fused-shared"]["departures_from_paper"] == ["mask"]


def test_list_filters_by_glob():
    result = runner.invoke(app, ["list", "fused*", "--json"])
    assert [i["name"] for i in json.loads(result.output)["implementations"]] == ["fused", "fused-shared"]
    empty = runner.invoke(app, ["list", "nope*"])
    assert empty.exit_code == 0 and "no implementation matches" in empty.output


def test_help_and_version():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "list" in result.output
    assert runner.invoke(app, ["--version"]).output.startswith("dbench ")


@pytest.mark.parametrize("command", [[], ["list"], ["verify"], ["run"], ["merge"], ["compare"], ["report"], ["show"]])
def test_help_names_what_each_option_takes_not_a_python_type(command):
    """Options show what they take (FILE, NxCxHxW, K, forward|backward|both, ...) and flags
    nothing, never a Python type such as ``<list[str]>``. (Arguments keep typer's name and type.)"""
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    options = result.output[result.output.index("Options"):]
    assert not re.search(r"<(bool|str|int|float|path|list\[\w+\])( range)?>", options), options


def test_help_and_list_do_not_import_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from dropblock_bench.cli import app\n"
        "r = CliRunner().invoke(app, ['list'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('torch', 'pandas', 'scipy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_list_all_shows_peers_that_are_not_installed(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    libraries = {"timm", "torchvision", "dropblock", "monai", "mmcv"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in libraries else real_find_spec(name, *a))
    result = runner.invoke(app, ["list", "--all"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    assert "not installed (adapters ready)" in result.output and "pip install 'dropblock-bench[peers]'" in result.output
    payload = json.loads(runner.invoke(app, ["list", "--all", "--json"]).output)
    assert {p["name"] for p in payload["not_installed"]} == {"torchvision", "timm", "timm-per-channel", "dropblock-pkg",
        "torchvision-drop-block3d", "torchvision-stochastic-depth", "torchvision-stochastic-depth-batch", "timm-drop-path",
        "monai-drop-path", "mmcv-drop-path", "dropblock-pkg-3d"}  # fmt: skip


def test_list_says_which_path_each_implementation_takes_when_asked():
    from dropblock_bench.registry import get_implementation

    result = runner.invoke(app, ["list", "--json", "--backends"])
    assert result.exit_code == 0, result.output
    by_name = {item["name"]: item for item in json.loads(result.output)["implementations"]}
    assert by_name["fused"]["backend_status"] == get_implementation("fused").backend_status()
    assert "backend_status" not in by_name["paper"]  # no backend to report
    plain = json.loads(runner.invoke(app, ["list", "--json"]).output)
    assert all("backend_status" not in item for item in plain["implementations"])  # only when asked


def test_list_shows_the_five_families_and_filters_by_family():
    result = runner.invoke(app, ["list"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    for title in ("DropBlock2d: f(x, p, block_size)", "DropBlock3d:", "DropPath (stochastic depth): f(x, p)",
                  "SpatialDropout: f(x, p)", "Cutout: f(x, n_holes, length)"):  # fmt: skip
        assert title in result.output
    assert "batch*" in result.output and "eval-time*" in result.output  # the blog's DropPath departs
    only = runner.invoke(app, ["list", "--family", "cutout", "--json"])
    names = {impl["name"] for impl in json.loads(only.output)["implementations"]}
    assert names == {"cutout", "cutout-blog", "cutout-reference"}
    assert all(impl["family"] == "cutout" for impl in json.loads(only.output)["implementations"])


def test_an_unknown_family_is_one_line_and_exit_2():
    result = runner.invoke(app, ["list", "--family", "dropout"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --family: unknown family 'dropout'; choose from dropblock2d, dropblock3d, drop-path, spatial-dropout, cutout"
    ]


def test_run_times_each_family_with_its_own_call():
    result = runner.invoke(app, ["run", "--impl", "drop-path,cutout", "--shape", "4x3x16x16", "--holes", "2", "--block-size", "8",
                                 "--min-time", "0.01", "--rounds", "1", "--no-memory"], env={"COLUMNS": "120"})  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "dbench run: DropPath (stochastic depth)" in text and "p=0.1" in text
    assert "dbench run: Cutout" in text and "holes=2 L=8" in text
    assert "2 cases: 2 ok" in text


def test_an_implementation_of_another_family_than_the_one_named_is_one_line_and_exit_2():
    result = runner.invoke(app, ["run", "--family", "cutout", "--impl", "drop-path"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert result.output.strip() == ("error: --family cutout takes cutout implementations; drop-path is a drop-path one"
                                     " (leave out --family, or name its own)")  # fmt: skip
