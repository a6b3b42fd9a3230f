"""`dbench verify` end to end: exit codes, output, files, user callables."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dropblock_bench.cli import app

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def test_passing_implementation_exits_zero(tmp_path):
    result = runner.invoke(
        app, ["verify", "--impl", "paper", "--quick", "--json", str(tmp_path / "v.json"), "--csv", str(tmp_path / "v.csv")], env=WIDE
    )
    assert result.exit_code == 0, result.output
    assert "1 implementation(s) verified (quick): 1 passed" in result.output
    assert "quick mode" in result.output
    payload = json.loads((tmp_path / "v.json").read_text())
    assert payload["meta"]["settings"]["quick"] is True and payload["meta"]["torch_version"]
    [report] = payload["implementations"]
    assert report["passed"] and report["implementation"] == "paper"
    assert {"check", "case", "expected", "observed", "p_value", "adjusted_p", "verdict"} <= set(report["checks"][0])
    rows = list(csv.DictReader((tmp_path / "v.csv").open()))
    assert len(rows) == report["n_checks"] and rows[0]["implementation"] == "paper"


def test_departures_are_shown(tmp_path):
    result = runner.invoke(app, ["verify", "--impl", "blog-style", "--quick"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "departs from the paper: mask=shared, seeds=anywhere, gamma=naive" in result.output  # one line by default
    assert "paper.mask" not in result.output
    verbose = runner.invoke(app, ["verify", "--impl", "blog-style", "--quick", "--verbose"], env=WIDE)
    for line in ("paper.mask: mask=shared", "paper.seeds: seeds=anywhere", "paper.gamma: gamma=naive", "(-20%)"):
        assert line in verbose.output


BLOG_POST_STYLE = textwrap.dedent(
    """
    import torch

    def drop(x, p, block_size):
        mask = torch.ones_like(x)
        for i in range(block_size):
            mask[:, :, i::block_size, i::block_size] = 0
        mask = mask.view(x.shape[0], x.shape[1], -1)[:, :, ::-1]
        return x * mask.reshape(x.shape)

    def dropout(x, p, block_size):
        return x * (torch.rand_like(x) >= p) / (1 - p)
    """
)


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "mine.py"
    path.write_text(BLOG_POST_STYLE)
    return path


def test_user_callable_with_defects_exits_one_and_names_them(user_file):
    result = runner.invoke(app, ["verify", "--impl", f"{user_file}:drop", "--quick"], env=WIDE)
    assert result.exit_code == 1, result.output
    assert "raised ValueError" in result.output and "1 failed" in result.output


def test_contract_overrides_apply_to_user_callables(user_file):
    result = runner.invoke(
        app, ["verify", "--impl", f"{user_file}:dropout", "--quick", "--norm", "expected"], env=WIDE
    )
    assert result.exit_code == 1  # plain dropout is not DropBlock: the block check fails
    assert "blocks" in result.output and "norm=expected" in result.output


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("papr", "did you mean paper"),
        ("absent.py:f", "file not found"),
        ("{file}:nope", "has no callable 'nope'"),
    ],
)
def test_usage_errors_exit_two_without_traceback(user_file, spec, message):
    result = runner.invoke(app, ["verify", "--impl", spec.format(file=user_file)], env=WIDE)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_callable_raising_on_import_exits_two(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import not_a_real_module_xyz\n")
    result = runner.invoke(app, ["verify", "--impl", f"{bad}:f"], env=WIDE)
    assert result.exit_code == 2 and "ModuleNotFoundError" in result.output


def test_bad_contract_value_exits_two(user_file):
    result = runner.invoke(app, ["verify", "--impl", f"{user_file}:dropout", "--mask", "sometimes"], env=WIDE)
    assert result.exit_code == 2 and "must be one of per-channel, shared" in result.output


MISTAKES = textwrap.dedent(
    """
    import torch
    from torch import nn


    class MyDropBlock(nn.Module):
        def __init__(self, p, block_size):
            super().__init__()
            self.p, self.block_size = p, block_size

        def forward(self, x):
            return x


    instance = MyDropBlock(0.1, 7)


    def one_argument(x):
        return x


    def no_shortcut(x, p, block_size):
        # right law, p = 0 not special-cased: x * keep * numel / kept, a few ulp off the identity
        from dropblock_bench.implementations import paper
        keep = paper.drop_block2d(torch.ones_like(x), p, block_size) != 0 if p > 0 else torch.ones_like(x, dtype=torch.bool)
        kept = keep.sum(dtype=torch.float64).clamp_min(1).float()
        return (x.float() * keep * keep.numel() / kept).to(x.dtype)
    """
)


@pytest.fixture
def mistakes_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_db.py"
    path.write_text(MISTAKES)
    return path


@pytest.mark.parametrize(
    ("attribute", "message"),
    [
        ("MyDropBlock", "is an nn.Module class"),
        ("instance", "is an nn.Module instance"),
        ("one_argument", "does not take (x, p, block_size)"),
    ],
)
def test_a_callable_of_the_wrong_kind_gets_one_line_on_how_to_wrap_it(mistakes_file, attribute, message):
    result = runner.invoke(app, ["verify", "--impl", f"{mistakes_file}:{attribute}"], env=WIDE)
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())  # rich wraps long lines
    assert message in output and "def drop(x, p, block_size)" in output
    assert result.output.count("error:") == 1 and "Traceback" not in result.output


def test_a_file_without_callable_says_so_and_lists_what_it_defines(mistakes_file):
    result = runner.invoke(app, ["verify", "--impl", str(mistakes_file)], env=WIDE)
    assert result.exit_code == 2
    assert "names a file but no callable" in result.output
    assert "MyDropBlock, instance, no_shortcut, one_argument" in " ".join(result.output.split())


def test_warnings_pass_unless_strict(mistakes_file):
    result = runner.invoke(app, ["verify", "--impl", f"{mistakes_file}:no_shortcut", "--quick"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "passed with warnings" in result.output and "api.p0" in result.output and "ulp" in result.output
    assert "api.eval" in result.output and "f takes no `training` argument" in result.output  # skipped, not passed
    strict = runner.invoke(app, ["verify", "--impl", f"{mistakes_file}:no_shortcut", "--quick", "--strict"], env=WIDE)
    assert strict.exit_code == 1 and "--strict fails on warnings" in strict.output


def test_contract_flags_reach_the_contract(user_file):
    result = runner.invoke(
        app, ["verify", "--impl", f"{user_file}:dropout", "--quick", "--verbose", "--anchor", "up-left", "--clamp", "per-axis", "--batch", "shared"],
        env=WIDE,
    )
    assert "paper.anchor" in result.output and "paper.clamp" in result.output and "paper.batch" in result.output


def test_ctrl_c_keeps_the_implementations_already_verified(tmp_path, monkeypatch):
    from dropblock_bench.verify import session

    real = session.verify_implementation
    calls = []

    def interrupt_on_second(impl, settings, progress=None):
        calls.append(impl.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(impl, settings, progress)

    monkeypatch.setattr(session, "verify_implementation", interrupt_on_second)
    out = tmp_path / "v.json"
    result = runner.invoke(app, ["verify", "--impl", "paper,fused,blog-style", "--quick", "--json", str(out), "--csv", str(tmp_path / "v.csv")], env=WIDE)
    assert result.exit_code == 130
    assert "interrupted: 1 of 3 implementations verified" in result.output
    assert [r["implementation"] for r in json.loads(out.read_text())["implementations"]] == ["paper"]
    assert {row["implementation"] for row in csv.DictReader((tmp_path / "v.csv").open())} == {"paper"}


def test_verify_family_runs_the_family_verifier(tmp_path):
    result = runner.invoke(app, ["verify", "--family", "spatial-dropout", "--impl", "spatial-dropout*", "--quick", "--json",
                                 str(tmp_path / "v.json")], env=WIDE)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 implementation(s) verified (quick): 2 passed" in result.output
    reports = json.loads((tmp_path / "v.json").read_text())["implementations"]
    assert {r["implementation"] for r in reports} == {"spatial-dropout", "spatial-dropout-reference"}
    assert all(r["family"] == "spatial-dropout" for r in reports)
    assert any(c["check"] == "variance-shift" and c["verdict"] == "note" for c in reports[0]["checks"])


def test_verify_a_family_file_callable_by_its_signature(tmp_path):
    source = tmp_path / "my_drop_path.py"
    source.write_text(textwrap.dedent("""
        import torch

        def drop_path(x, p):  # the whole batch at once: a defect under the row contract
            return x * 0 if torch.rand(()) < p else x / (1 - p)
    """))
    result = runner.invoke(app, ["verify", "--family", "drop-path", "--impl", f"{source}:drop_path", "--quick"], env=WIDE)
    assert result.exit_code == 1, result.output
    assert "independence.samples" in result.output
    wrong = runner.invoke(app, ["verify", "--family", "cutout", "--impl", f"{source}:drop_path", "--quick"], env=WIDE)
    assert wrong.exit_code == 2 and "does not take (x, n_holes, length)" in wrong.output, wrong.output


def test_contract_fields_of_another_family_are_declared_with_contract(tmp_path):
    source = tmp_path / "batch_drop_path.py"
    source.write_text(textwrap.dedent("""
        import torch

        def drop_path(x, p):  # one coin for the whole batch, scaled at train: torchvision's mode="batch"
            return x * 0 if torch.rand(()) < p else x / (1 - p)
    """))
    spec = f"{source}:drop_path"
    declared = runner.invoke(app, ["verify", "--family", "drop-path", "--impl", spec, "--contract", "unit=batch", "--quick"], env=WIDE)
    assert declared.exit_code == 0, declared.output
    assert "departs from timm's and torchvision's DropPath: unit=batch" in declared.output
    for bad, says in (("unit=bogus", "must be one of row, batch, element"), ("mask=shared", "has no field mask"),
                      ("unit", "use FIELD=VALUE")):  # fmt: skip
        result = runner.invoke(app, ["verify", "--family", "drop-path", "--impl", spec, "--contract", bad, "--quick"], env=WIDE)
        assert result.exit_code == 2 and says in result.output and len(result.output.strip().splitlines()) == 1, result.output
