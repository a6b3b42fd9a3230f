"""Rich rendering of results: what each table shows, checked on the rendered text."""

from __future__ import annotations

import io
import re

import pytest
import torch
from rich.console import Console

from dropblock_bench.compare import CaseComparison, Comparison
from dropblock_bench.registry import Implementation, default_registry
from dropblock_bench.render import compare_table, implementations_table, mask_text, run_table
from dropblock_bench.run.matrix import RunCase
from dropblock_bench.run.records import CaseRecord, Timing
from dropblock_bench.spec import MAIN_FIELDS, Contract


def _text(renderable, width: int = 200) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def _result(name: str, median: float, **case_fields) -> CaseRecord:
    fields = {"implementation": name, "device": "cpu", "dtype": "float32", "shape": (2, 4, 12, 12), "block_size": 3, "p": 0.1, "mode": "forward"}
    timing = Timing(median, 0.01, median, median, 1, 1.0, floor_ratio=median, gbps=1.0)
    return CaseRecord(RunCase(**{**fields, **case_fields}), timing=timing)


def test_run_table_puts_fixed_axes_in_the_title_and_varying_ones_in_columns():
    text = _text(run_table([_result("fused", 1.0, block_size=3), _result("fused", 2.0, block_size=5)]))
    assert "dbench run (mode fwd, dtype fp32, device cpu)" in text
    rows = [line.split() for line in text.splitlines() if line.strip().startswith("fused")]
    # name, setting (k, p), ms, ±IQR, ×best, ×floor: each block size is its own setting, so both are the best
    assert [(row[1], row[2], row[3], row[5], row[6]) for row in rows] == [
        ("k=3", "p=0.1", "1.00", "1.00", "1.00"), ("k=5", "p=0.1", "2.00", "1.00", "2.00")]


def test_run_table_writes_each_familys_own_arguments():
    cutout = _result("cutout", 1.0, shape=(8, 3, 32, 32), block_size=16, p=0.0, family="cutout", holes=1)
    text = " ".join(_text(run_table([cutout], "dbench run: Cutout")).split())
    assert "dbench run: Cutout (mode fwd, dtype fp32, device cpu, holes=1 L=16)" in text
    drop_path = _result("drop-path", 1.0, shape=(8, 197, 768), block_size=0, family="drop-path")
    text = _text(run_table([drop_path]))
    assert "p=0.1)" in text and "k=" not in text and "197" in text


def test_run_table_names_a_users_callable_by_file_and_function():
    text = _text(run_table([_result("/some/long/path/to/my_dropblocks.py:drop", 1.0)]))
    assert "my_dropblocks.py:drop" in text and "/some/long" not in text


def test_run_table_marks_noisy_cases_and_says_why_in_the_caption():
    noisy = _result("fused", 2.0)
    noisy.timing.noise = ["spread"]
    text = _text(run_table([_result("paper", 1.0), noisy]))
    rows = {line.split()[0]: line for line in text.splitlines() if line.strip().startswith(("paper", "fused"))}
    assert "~2.00 ±" in rows["fused"] and "~" not in rows["paper"]
    assert "~: noisy (IQR > 10% of the median, or the floor drifted > 1.25× across rounds)" in " ".join(text.split())
    quiet = _text(run_table([_result("paper", 1.0), _result("fused", 2.0)]))
    assert "~" not in quiet and "noisy" not in quiet


def test_run_table_with_marks_fits_80_columns_without_cutting_a_number():
    names = ["paper", "blog-style", "fused", "fused-shared", "timm-dropblock", "torchvision-drop-block2d"]
    results = []
    for mode in ("forward", "backward"):
        for index, name in enumerate(names):
            result = _result(name, 12.3456 * (index + 1), mode=mode)
            result.timing.iqr_ms = 3.7 * (index + 1)
            result.timing.noise = ["spread"] if index % 2 else []
            results.append(result)
    lines = _text(run_table(results), width=80).splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = [line for line in lines if line.strip().startswith(("paper", "blog-style"))]
    assert any("~24.7 ±7.40" in row for row in rows) and all("…" not in row.split()[-1] for row in rows)


def test_compare_table_lists_failing_cases_and_notes():
    case = CaseComparison("fused 2x4x12x12", 1.0, 1.5, 1.5, None, None, 0.2, 5, 5, "welch (no raw samples)", "~",
                          note="raw samples missing")  # fmt: skip
    undecided = CaseComparison("paper 2x4x12x12", 1.0, 1.04, 1.04, 0.9, 1.2, 0.2, 8, 8, "mann-whitney, rounds", "inconclusive",
                               note="about 40 rounds per side would decide")  # fmt: skip
    comparison = Comparison([case, undecided], [], [], 1.5, 0.05, 0.01, [], failing={"paper 2x4x12x12": "RuntimeError: kaboom"},
                            evidence="the rounds of two separate runs", level=0.005)  # fmt: skip
    text = _text(compare_table(comparison, "base.json", "head.json"))
    assert "raw samples missing" in text and "RuntimeError: kaboom" in text and "failing" in text
    assert "inconclusive" in text and "about 40 rounds per side would decide" in text
    assert "slower by >= 5% at alpha 0.01 (p < 0.005 per case)" in " ".join(text.split())
    assert "evidence: the rounds of two separate runs" in " ".join(text.split())


def test_compare_table_keeps_its_verdicts_whole_at_80_columns():
    key = "fused-shared 32x256x56x56 float32 cpu k=7 p=0.1 forward"
    case = CaseComparison(key, 10.0, 18.8, 1.88, 1.7, 2.0, 2e-7, 13, 41, "mann-whitney", "regression")
    comparison = Comparison([case], [], [], 1.88, 0.05, 0.01, [], failing={"paper 2x4x12x12": "RuntimeError: kaboom"})
    text = _text(compare_table(comparison, "base.json", "head.json", show_interval=False), width=80)
    assert "regression" in text and "failing" in text and "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_mask_text_draws_dropped_units_as_blocks():
    mask = torch.zeros(2, 3, 4, dtype=torch.bool)
    mask[1, 0, 1] = True
    lines = _text(mask_text(mask, "title")).splitlines()
    assert lines[0] == "title"
    assert lines[1].split() == ["1", "2"]  # channel numbers, shortened to fit above maps 8 columns wide
    assert lines[2].count("██") == 1 and lines[2].count("·") == 7
    assert all("██" not in line for line in lines[3:])


def test_two_files_with_one_name_keep_their_paths():
    text = _text(run_table([_result("v1/impl.py:g", 1.0), _result("v2/impl.py:g", 2.0)]))
    assert "v1/impl.py:g" in text and "v2/impl.py:g" in text


def _recorded(renderable, width: int) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text().splitlines()


def _wide_implementations() -> list[Implementation]:
    """The built-ins, and one with the widest value of every contract field and a long name."""
    widest = Contract(mask="per-channel", seeds="anywhere", gamma="naive", norm="expected", anchor="down-right")
    return [*default_registry().implementations(family="dropblock2d"), Implementation(
        "my-very-own-dropblock", lambda x, p, block_size: x, widest, description="A plugin; " + "words " * 20,
        supports_generator=False,
    )]  # fmt: skip


@pytest.mark.parametrize("width", [40, 60, 80, 120, 200])
def test_implementations_table_never_cuts_a_contract_value_and_fits_the_width(width):
    implementations = _wide_implementations()
    lines = _recorded(implementations_table(implementations), width)
    assert all(len(line.rstrip()) <= width for line in lines)
    assert not any("…" in line for line in lines)
    text = "\n".join(lines)
    for impl in implementations:
        departures = impl.contract.departures_from_paper()
        for field in MAIN_FIELDS:
            value = str(getattr(impl.contract, field)) + ("*" if field in departures else "")
            assert re.search(rf"(^|[ =]){re.escape(value)}( |$)", text, re.MULTILINE), (impl.name, value)
    assert "also anchor=down-right*" in text


def test_implementations_table_puts_name_and_contract_on_one_line_and_the_description_under_it():
    lines = _recorded(implementations_table(_wide_implementations()), 80)
    row = next(i for i, line in enumerate(lines) if line.startswith(" my-very-own-dropblock "))
    assert lines[row].split() == ["my-very-own-dropblock", "per-channel", "anywhere*", "naive*", "expected*", "cpu", "cuda"]
    header = next(line for line in lines if line.lstrip().startswith("implementation"))
    assert header.split() == ["implementation", "mask", "seeds", "gamma", "norm", "devices"]
    # the description spans the row (two lines, not seven), then what got no column
    assert lines[row + 1].strip().startswith("A plugin; words") and len(lines[row + 1]) > 70
    assert lines[row + 3].strip() == "also anchor=down-right*"
    assert lines[row + 4].strip() == "supports inplace backward · dtypes fp32 fp64 fp16 bf16"


def test_implementations_table_drops_optional_columns_last_to_first_and_honours_a_given_width():
    wide = _recorded(implementations_table(_wide_implementations()), 200)
    header = next(line for line in wide if line.lstrip().startswith("implementation"))
    assert header.split()[-3:] == ["devices", "supports", "dtypes"]
    assert not any(line.strip().startswith("supports ") for line in wide)
    narrow = _recorded(implementations_table(_wide_implementations(), width=70), 200)
    assert max(len(line.rstrip()) for line in narrow) <= 70
    header = next(line for line in narrow if line.lstrip().startswith("implementation"))
    assert header.split()[-1] == "norm"


def test_implementations_table_stacks_entries_when_even_the_contract_does_not_fit():
    lines = _recorded(implementations_table(_wide_implementations()), 40)
    row = lines.index(" my-very-own-dropblock")
    assert lines[row + 1].split() == ["mask=per-channel", "seeds=anywhere*"]
    assert lines[row + 2].split() == ["gamma=naive*", "norm=expected*"]


def test_mask_text_lays_maps_out_in_bands_that_fit_the_width():
    mask = torch.zeros(3, 14, 14, dtype=torch.bool)
    mask[2, 0, 0] = True
    lines = _recorded(mask_text(mask, "title"), 80)  # width 80 by default
    assert all(len(line.rstrip()) <= 80 for line in lines)
    assert lines[1].split() == ["channel", "1", "channel", "2"]
    assert lines[1 + 15] == "" and lines[2 + 15].split() == ["channel", "3"]
    assert lines[3 + 15].startswith("██· · ")
    wide = _recorded(mask_text(mask, "title", width=200), 200)
    assert wide[1].split() == ["channel", "1", "channel", "2", "channel", "3"] and len(wide) == 1 + 1 + 14
    assert wide[2].rstrip().endswith("   ██" + "· " * 12 + "·")


def test_mask_text_gives_a_map_wider_than_the_terminal_one_column_a_unit():
    lines = _recorded(mask_text(torch.ones(1, 2, 60, dtype=torch.bool), "title", width=80), 80)
    assert lines[2] == "█" * 60


def test_family_maps_show_each_familys_structure():
    from dropblock_bench.render import family_maps

    samples = torch.zeros(10, 4, 3, dtype=torch.bool)
    assert [label for label, _ in family_maps("drop-path", samples)] == [f"sample {n}" for n in range(1, 9)]
    assert family_maps("drop-path", samples)[0][1].shape == (4, 3)
    volume = torch.zeros(1, 3, 2, 5, 6, dtype=torch.bool)
    maps = family_maps("dropblock3d", volume)
    assert [label for label, _ in maps] == ["ch 1 depth 1", "ch 1 depth 2", "ch 2 depth 1", "ch 2 depth 2"]
    assert maps[0][1].shape == (5, 6)
    tokens = torch.zeros(2, 3, 7, dtype=torch.bool)  # SpatialDropout on (N, C, L): each channel one row
    assert [m.shape for _, m in family_maps("spatial-dropout", tokens)] == [(1, 7)] * 3
