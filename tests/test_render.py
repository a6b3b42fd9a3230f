"""Rich rendering of results: what each table shows, checked on the rendered text."""

from __future__ import annotations

import io

import torch
from rich.console import Console

from dropblock_bench.compare import CaseComparison, Comparison
from dropblock_bench.matrix import RunCase
from dropblock_bench.render import compare_table, mask_text, run_table
from dropblock_bench.timing import CaseResult


def _text(renderable, width: int = 200) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def _result(name: str, median: float, **case_fields) -> CaseResult:
    fields = {"implementation": name, "device": "cpu", "dtype": "float32", "shape": (2, 4, 12, 12), "block_size": 3, "p": 0.1, "mode": "forward"}
    return CaseResult(RunCase(**{**fields, **case_fields}), median_ms=median, iqr_ms=0.01, floor_ratio=median, gbps=1.0)


def test_run_table_puts_fixed_axes_in_the_title_and_varying_ones_in_columns():
    text = _text(run_table([_result("fused", 1.0, block_size=3), _result("fused", 2.0, block_size=5)]))
    assert "dbench run (mode fwd, dtype fp32, device cpu, p 0.1)" in text
    rows = [line.split() for line in text.splitlines() if line.strip().startswith("fused")]
    # name, k, ms, ±IQR, ×best, ×floor, GB/s: each block size is its own setting, so both are the best
    assert [(row[1], row[2], row[4], row[5]) for row in rows] == [("3", "1.00", "1.00", "1.00"), ("5", "2.00", "1.00", "2.00")]


def test_run_table_names_a_users_callable_by_file_and_function():
    text = _text(run_table([_result("/some/long/path/to/my_dropblocks.py:drop", 1.0)]))
    assert "my_dropblocks.py:drop" in text and "/some/long" not in text


def test_compare_table_lists_failing_cases_and_notes():
    case = CaseComparison("fused 2x4x12x12", 1.0, 1.5, 1.5, None, None, 0.2, 5, 5, "welch (no raw samples)", "~",
                          note="raw samples missing")  # fmt: skip
    comparison = Comparison([case], [], [], 1.5, 0.05, 0.01, [], failing={"paper 2x4x12x12": "RuntimeError: kaboom"})
    text = _text(compare_table(comparison, "base.json", "head.json"))
    assert "raw samples missing" in text and "RuntimeError: kaboom" in text and "failing" in text
    assert "slower by >= 5% and Mann-Whitney p < 0.01" in text


def test_mask_text_draws_dropped_units_as_blocks():
    mask = torch.zeros(2, 3, 4, dtype=torch.bool)
    mask[1, 0, 1] = True
    lines = _text(mask_text(mask, "title")).splitlines()
    assert lines[0] == "title"
    assert lines[1].count("██") == 1 and lines[1].count("·") == 7
    assert all("██" not in line for line in lines[2:])


def test_two_files_with_one_name_keep_their_paths():
    text = _text(run_table([_result("v1/impl.py:g", 1.0), _result("v2/impl.py:g", 2.0)]))
    assert "v1/impl.py:g" in text and "v2/impl.py:g" in text
