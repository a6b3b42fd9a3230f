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
    assert "departs from the paper: mask=shared, seeds=anywhere, gamma=naive" in result.output


SEED_000_STYLE = textwrap.dedent(
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
    path.write_text(SEED_000_STYLE)
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
