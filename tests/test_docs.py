"""The docs stay true: the CLI reference matches `--help`, links resolve, the README stays short."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MARKDOWN = [README, *sorted(DOCS.glob("*.md")), *sorted((ROOT / "examples").rglob("*.md"))]

_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#+\s+(.+?)\s*$", re.MULTILINE)


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prose(path: Path) -> str:
    """The file's text without fenced code blocks."""
    return _FENCE.sub("", path.read_text(encoding="utf-8"))


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_cli_reference_is_current():
    generated = _load_generator().render()
    current = (DOCS / "cli.md").read_text(encoding="utf-8") if (DOCS / "cli.md").exists() else ""
    if generated != current:
        pytest.fail("docs/cli.md is stale: run python scripts/gen_cli_docs.py", pytrace=False)


def test_cli_reference_covers_every_command():
    generator = _load_generator()
    names = generator.command_names()
    assert {"list", "verify", "run", "compare", "report", "show", "merge"} <= set(names)
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    for name in names:
        assert f"## `dbench {name}`" in text


def test_readme_is_short():
    assert len(README.read_bytes()) <= 10 * 1024


def test_readme_starts_with_the_two_commands_of_a_fresh_machine():
    first_block = README.read_text(encoding="utf-8").split("```bash\n", 1)[1].split("```", 1)[0]
    install_and_run = (
        "python3 -m venv .venv && .venv/bin/python scripts/ensure_torch.py && .venv/bin/pip install -e . "
        "&& .venv/bin/dbench run"
    )
    test = '.venv/bin/pip install -e ".[dev]" && .venv/bin/python -m pytest'
    assert first_block.splitlines() == [install_and_run, test]


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_resolve(page: Path):
    broken = []
    for target in _LINK.findall(_prose(page)):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md":
            anchors = {_anchor(heading) for heading in _HEADING.findall(_prose(linked))}
            if anchor not in anchors:
                broken.append(f"{target}: no heading with anchor #{anchor}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_lab_labels(page: Path):
    """Things are named by what they are, not by the seed, issue or session that produced them."""
    labels = re.findall(r"\b(?:seed \d{3}|issue #\d+|session \d+)\b", page.read_text(encoding="utf-8"), re.IGNORECASE)
    assert not labels, f"{page.relative_to(ROOT)}: {labels}"


def _dbench_invocations(text: str) -> list[tuple[str, list[str]]]:
    """(command, its --flags) of every `dbench COMMAND ...` line (continuations joined)."""
    joined = text.replace("\\\n", " ")
    found = []
    for match in re.finditer(r"bin/dbench (\w+)([^\n]*)", joined):
        found.append((match.group(1), re.findall(r"(?<!\S)(--[a-z][a-z-]*)", match.group(2))))
    return found


def test_the_benchmark_workflow_calls_commands_and_flags_that_exist():
    """The CI workflow runs `dbench ab` (the paired A/B), with options `dbench ab` has."""
    import typer.main

    from dropblock_bench.cli import app

    group = typer.main.get_command(app)
    invocations = _dbench_invocations((ROOT / ".github" / "workflows" / "benchmark.yml").read_text(encoding="utf-8"))
    assert [name for name, _ in invocations] == ["ab"]
    for name, flags in invocations:
        command = group.commands[name]  # type: ignore[attr-defined]
        known = {opt for param in command.params for opt in param.opts}
        assert set(flags) <= known, f"dbench {name}: unknown {set(flags) - known}"
