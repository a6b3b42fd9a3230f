"""`dbench report` and `dbench show` end to end."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dropblock_bench.cli import app
from dropblock_bench.report import run_title

pytest.importorskip("matplotlib")
runner = CliRunner()


@pytest.fixture(scope="module")
def run_and_verify(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    run = runner.invoke(
        app, ["run", "--impl", "fused,blog-style", "--shape", "2x4x14x14", "--mode", "both", "--min-time", "0.02", "--no-memory", "--malloc", "system", "--json", str(folder / "run.json")]
    )
    assert run.exit_code == 0, run.output
    verify = runner.invoke(app, ["verify", "--impl", "fused,blog-style", "--quick", "--json", str(folder / "verify.json")])
    assert verify.exit_code == 0, verify.output
    return folder / "run.json", folder / "verify.json"


def test_report_writes_markdown_and_plots(run_and_verify, tmp_path):
    run_json, verify_json = run_and_verify
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", str(run_json), "--verify", str(verify_json), "-o", str(out)])
    assert result.exit_code == 0, result.output
    for picture in ("timing_forward.png", "timing_backward.png", "drop_rate.png", "masks.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "README.md").read_text()
    assert "| 2x4x14x14 | fused | forward |" in markdown
    assert "blog-style | ✅ passed" in markdown and "mask=shared, seeds=anywhere, gamma=naive" in markdown
    assert "![drop rate](drop_rate.png)" in markdown
    assert "![timing, forward+backward](timing_backward.png)" in markdown and "| fused | forward+backward |" in markdown
    # titled by the run it reports, not by the folder it was written to
    meta = json.loads(run_json.read_text())["meta"]
    assert markdown.splitlines()[0] == f"# dbench run: {run_title(meta)}" and "report" not in markdown.splitlines()[0]
    assert meta["git_commit"][:7] in markdown.splitlines()[0]
    assert "Memory: malloc " in markdown and "fused outputs advised onto huge pages: " in markdown


def test_report_tells_settings_apart_when_the_run_has_several(run_and_verify, tmp_path):
    run_json, _ = run_and_verify
    payload = json.loads(run_json.read_text())
    payload["cases"] += [dict(c, block_size=3, device="cuda") for c in payload["cases"]]
    (tmp_path / "run.json").write_text(json.dumps(payload))
    result = runner.invoke(app, ["report", str(tmp_path / "run.json"), "-o", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "report" / "README.md").read_text()
    assert "| shape | device | setting | implementation | mode | dtype |" in markdown
    assert "| 2x4x14x14 | cpu | k=7 p=0.1 | fused | forward |" in markdown and "| 2x4x14x14 | cuda | k=3 p=0.1 | fused | forward |" in markdown


def test_report_has_a_timing_section_and_example_masks_for_each_family(tmp_path):
    run = runner.invoke(app, ["run", "--impl", "fused,drop-path,cutout,dropblock3d", "--min-time", "0.01", "--rounds", "1", "--no-memory",
                              "--shape", "2x3x8x8,2x2x4x6x6", "--block-size", "3", "--json", str(tmp_path / "run.json")])  # fmt: skip
    assert run.exit_code == 0, run.output
    result = runner.invoke(app, ["report", str(tmp_path / "run.json"), "-o", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "report" / "README.md").read_text()
    for title in ("DropBlock2d", "DropBlock3d", "DropPath (stochastic depth)", "Cutout"):
        assert f"## Timing: {title}" in markdown
    assert "| 2x3x8x8 | cutout | forward | float32 |" in markdown and "| 2x2x4x6x6 | dropblock3d | forward |" in markdown
    for family in ("drop-path", "cutout", "dropblock3d"):
        assert (tmp_path / "report" / f"timing_{family}_forward.png").read_bytes()[:4] == b"\x89PNG"
        assert f"](masks_{family}.png)" in markdown and (tmp_path / "report" / f"masks_{family}.png").exists()
    alone = runner.invoke(app, ["report", str(tmp_path / "run.json"), "-o", str(tmp_path / "cutout"), "--family", "cutout"])
    assert alone.exit_code == 0, alone.output
    markdown = (tmp_path / "cutout" / "README.md").read_text()
    assert "## Timing: Cutout" in markdown and "DropPath" not in markdown and "## Timing: DropBlock2d" not in markdown
    missing = runner.invoke(app, ["report", str(tmp_path / "run.json"), "-o", str(tmp_path / "none"), "--family", "spatial-dropout"])
    assert missing.exit_code == 2 and "holds no spatial-dropout case" in missing.output


def test_report_refuses_bad_input(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"nope": 1}))
    result = runner.invoke(app, ["report", str(bad), "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "dbench run --json" in result.output


def test_show_draws_a_mask_and_saves_a_png(tmp_path):
    result = runner.invoke(app, ["show", "--impl", "paper", "--shape", "1x2x10x12", "-k", "3", "--p", "0.3", "--png", str(tmp_path / "m.png")])
    assert result.exit_code == 0, result.output
    assert "██" in result.output and "dropped" in result.output
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    assert runner.invoke(app, ["show", "--impl", "papr"]).exit_code == 2


@pytest.mark.parametrize(
    ("meta", "title"),
    [
        ({"time": "2026-11-23T08:54:09+00:00", "git_commit": "c9c0e80127358ad5d064f0ebc0bb271167201ccf", "cpu": "AMD EPYC", "gpu": None},
         "2026-11-23 08:54 UTC · commit c9c0e80 · AMD EPYC"),
        ({"time": "2026-11-23T10:54:09+02:00", "git_commit": "c9c0e80127358ad5d064f0ebc0bb271167201ccf-dirty", "cpu": "AMD EPYC",
          "gpu": {"name": "NVIDIA H100 80GB HBM3"}}, "2026-11-23 10:54 UTC+0200 · commit c9c0e80-dirty · NVIDIA H100 80GB HBM3"),
        ({"time": "yesterday", "git_commit": None, "cpu": "x86_64"}, "yesterday · x86_64"),
        ({}, ""),
    ],
)  # fmt: skip
def test_run_title_names_when_at_which_commit_and_on_what(meta, title):
    assert run_title(meta) == title


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--impl", "drop-path"], ["drop-path: 8x6x6 p=0.5 seed=0", "sample 8"]),
        (["--impl", "dropblock3d", "--p", "0.3"], ["dropblock3d: 1x2x4x10x10 k=3 p=0.3", "ch 2 depth 4"]),
        (["--impl", "spatial-dropout"], ["spatial-dropout: 1x8x6x6 p=0.3", "channel 8"]),
        (["--impl", "cutout", "--holes", "1", "-k", "4", "--shape", "2x3x8x8"], ["cutout: 2x3x8x8 holes=1 L=4", "channel 3"]),
    ],
)  # fmt: skip
def test_show_draws_each_familys_structure(tmp_path, args, expected):
    result = runner.invoke(app, ["show", *args, "--png", str(tmp_path / "m.png")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert all(text in result.output for text in expected) and "██" in result.output
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


def test_show_refuses_arguments_the_family_does_not_take_and_shapes_of_another_rank():
    result = runner.invoke(app, ["show", "--impl", "cutout", "--p", "0.3"])
    assert result.exit_code == 2 and "cutout (cutout) takes no --p; its call is f(x, n_holes, length)" in " ".join(result.output.split())
    result = runner.invoke(app, ["show", "--impl", "dropblock3d", "--shape", "1x2x8x8"])
    assert result.exit_code == 2 and "dropblock3d takes NxCxDxHxW shapes" in result.output
