"""What each command shows once its engine has returned: lines for stdout and for stderr, and
the exit code. Pure: builds renderables (rich markup strings and tables), never prints, so the
CLI only prints a :class:`Screen` and exits with its code."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - typing only
    from collections.abc import Mapping, Sequence

    import torch

    from dropblock_bench.compare import Comparison
    from dropblock_bench.families.catalog import Family
    from dropblock_bench.registry import Implementation
    from dropblock_bench.run.session import RunOutcome
    from dropblock_bench.verify.session import VerifyOutcome

__all__ = ["Screen", "compare_screen", "list_screen", "listing_payload", "run_screen", "show_screen", "verify_screen"]

INTERRUPTED = 130
FAILED = 1
WIDE_TERMINAL = 110  # columns from which tables also show their interval or statistic column


@dataclasses.dataclass
class Screen:
    """Renderables for stdout (``out``) and stderr (``err``), and the command's exit code;
    ``title`` where a picture of the same thing takes it too."""

    out: list[object] = dataclasses.field(default_factory=list)
    err: list[object] = dataclasses.field(default_factory=list)
    exit_code: int = 0
    title: str = ""


def listing_payload(
    implementations: Sequence[Implementation],
    missing: Sequence[tuple[Implementation, str]],
    plugin_errors: Sequence[str],
    backends: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """``dbench list --json``: the records (with the code path each takes here, where asked and
    reported), the adapters not installed (with how), plugin errors."""
    paths = backends or {}
    return {
        "implementations": [{**impl.as_dict(), **({"backend_status": paths[impl.name]} if impl.name in paths else {})} for impl in implementations],
        "not_installed": [{**impl.as_dict(), "install": hint} for impl, hint in missing],
        "plugin_errors": list(plugin_errors),
    }


def list_screen(
    implementations: Sequence[Implementation],
    missing: Sequence[tuple[Implementation, str]],
    pattern: str | None,
    plugin_errors: Sequence[str] = (),
    backends: Mapping[str, str] | None = None,
) -> Screen:
    """The implementations table, the code path each takes here (where asked), the adapters not
    installed with how to install them, and the plugins that failed to load (warnings, stderr)."""
    from rich.markup import escape

    from dropblock_bench.render import implementations_table

    screen = Screen()
    if not implementations:
        screen.out.append(f"[yellow]no implementation matches {pattern!r}[/]" if pattern else "[yellow]no implementation registered[/]")
    for index, (family, members) in enumerate(_by_family(implementations)):
        title = f"{family.title}: {family.signature} on {family.input_layout}"
        screen.out += [""] * bool(index) + [implementations_table(members, title=title)]
    screen.out += [f"[dim]{name}: {status}[/]" for name, status in (backends or {}).items()]
    for family, members in _by_family([impl for impl, _ in missing]):
        screen.out.append(implementations_table(members, title=f"{family.title}: not installed (adapters ready)"))
    if missing:
        for hint in dict.fromkeys(hint for _, hint in missing):
            screen.out.append(f"install them with: [bold]{escape(hint)}[/] (torchvision needs the torch it was built for)")
    screen.err += [f"[yellow]warning:[/] {message}" for message in plugin_errors]
    return screen


def _by_family(implementations: Sequence[Implementation]) -> list[tuple[Family, list[Implementation]]]:
    """The implementations grouped by family, in the catalogue's order; empty families left out."""
    from dropblock_bench.families.catalog import FAMILIES

    groups = [(family, [i for i in implementations if i.family == name]) for name, family in FAMILIES.items()]
    return [(family, members) for family, members in groups if members]


def show_screen(implementation: Implementation, mask: torch.Tensor, *, shape: str, setting: str, seed: int, width: int) -> Screen:
    """A sampled bool mask of the implementation's input shape, as text: the maps that show its
    family's structure (:func:`~dropblock_bench.render.family_maps`), titled with the call
    (``setting``: ``k=5 p=0.2``, ``holes=1 L=16``) and the fraction of the whole mask dropped."""
    from dropblock_bench.render import family_maps, maps_text

    rate = mask.float().mean().item()
    title = f"{implementation.name}: {shape} {setting} seed={seed} — {rate:.1%} dropped ({implementation.contract})"
    screen = Screen(title=title)
    maps = family_maps(implementation.family, mask)
    screen.out.append(maps_text(maps, title, width=width))
    drawn_of = {"drop-path": mask.shape[0], "dropblock3d": min(2, mask.shape[1]) * (mask.shape[2] if mask.dim() > 2 else 1)}
    total = drawn_of.get(implementation.family, mask.shape[1] if mask.dim() > 1 else 1)
    if len(maps) < total:
        screen.out.append(f"[dim]{len(maps)} of {total} maps drawn[/]")
    return screen


def verify_screen(outcome: VerifyOutcome, *, verbose: bool, strict: bool, quick: bool, saved: str, width: int) -> Screen:
    """Every report (:func:`~dropblock_bench.render.verify_lines`), then one summary line. Exit
    130 when interrupted, 1 when a check failed (or, with ``strict``, warned), else 0."""
    from dropblock_bench.render import verify_lines

    screen = Screen()
    for report in outcome.reports:
        screen.out += [*verify_lines(report, verbose=verbose, width=width), ""]
    reports, failed, warned = outcome.reports, outcome.failed, outcome.warned
    if outcome.interrupted:
        kept = f"{len(reports)} of {outcome.requested} implementations verified"
        screen.err.append(f"[yellow]interrupted: {kept}[/]" + (f"; they are in {saved}" if saved and reports else ""))
        screen.exit_code = INTERRUPTED
        return screen
    summary = (
        f"{len(reports)} implementation(s) verified{' (quick)' if quick else ''}:"
        f" {len(reports) - len(failed)} passed" + (f" ({len(warned)} with warnings)" if warned else "")
    )
    if failed:
        names = "; ".join(f"{r.implementation} ({', '.join(sorted({c.check for c in r.failures}))})" for r in failed)
        screen.out.append(f"[bold red]{summary}, {len(failed)} failed:[/] {names}")
        screen.exit_code = FAILED
    elif strict and warned:
        names = "; ".join(f"{r.implementation} ({', '.join(sorted({c.check for c in r.warnings}))})" for r in warned)
        screen.out.append(f"[bold red]{summary}; --strict fails on warnings:[/] {names}")
        screen.exit_code = FAILED
    else:
        screen.out.append(f"[bold green]{summary}.[/]")
    return screen


def run_screen(outcome: RunOutcome, *, malloc: str, saved: str, shard: str | None = None, excluded: bool = False) -> Screen:
    """The run table, its notes, the run's conditions and a summary line, and one warning
    (stderr) when the machine was busy (:func:`~dropblock_bench.run.machine_load.busy_reasons`).
    Exit 130 when interrupted, 1 when a case raised, else 0. An empty matrix (after ``shard``
    and exclusions) says so and nothing else."""
    from dropblock_bench.render import run_notes, run_table
    from dropblock_bench.run.machine_load import busy_reasons
    from dropblock_bench.run.records import CaseStatus

    screen = Screen()
    if not outcome.cases:
        screen.out.append(f"[yellow]{'this shard of ' if shard else ''}the matrix is empty{' after --exclude' if excluded else ''}; nothing to run[/]")
        return screen
    from dropblock_bench.families.catalog import family_named

    records = outcome.records
    families = list(dict.fromkeys(record.case.family for record in records if record.status is CaseStatus.OK))
    for index, family in enumerate(families):
        title = "dbench run" if families == ["dropblock2d"] else f"dbench run: {family_named(family).title}"
        screen.out += [""] * bool(index) + [run_table([r for r in records if r.case.family == family], title)]
    screen.out += run_notes(records)
    screen.out += [f"[dim]{name}: {status}[/]" for name, status in outcome.backends.items()]
    if malloc == "steady":
        screen.out.append(f"[dim]allocator: {outcome.allocator or 'system (steady needs glibc)'}[/]")
    busy = busy_reasons(outcome.machine_load) if outcome.machine_load else []
    if busy:
        screen.err.append(f"[yellow]warning:[/] busy machine, times may not reproduce: {'; '.join(busy)}")
    if outcome.interrupted:
        screen.err.append(f"[yellow]interrupted after {len(records)} of {len(outcome.cases)} cases[/]" + (f"; they are in {saved}" if saved else ""))
        screen.exit_code = INTERRUPTED
        return screen
    screen.out.append(
        f"{len(records)} cases: {outcome.count(CaseStatus.OK)} ok, {outcome.count(CaseStatus.SKIPPED)} skipped,"
        f" {outcome.count(CaseStatus.ERROR)} error" + (f"; written to {saved}" if saved else "")
    )
    screen.exit_code = FAILED if outcome.count(CaseStatus.ERROR) else 0
    return screen


def compare_screen(comparison: Comparison, base_name: str, head_name: str, *, width: int, tool: str = "dbench compare") -> Screen:
    """The comparison table, unmatched cases, warnings and the verdict. Exit 1 on a regression
    or a newly failing case; inconclusive cases are counted, never passed off as ``~``."""
    from dropblock_bench.render import compare_table

    screen = Screen(exit_code=FAILED if comparison.failed else 0)
    screen.out.append(compare_table(comparison, base_name, head_name, show_interval=width >= WIDE_TERMINAL, tool=tool))
    if comparison.stop:
        screen.out.append(f"[dim]rounds: {comparison.stop}[/]")
    for title, keys in (("only in base", comparison.only_in_base), ("only in head", comparison.only_in_head)):
        if keys:
            screen.out.append(f"[yellow]{title}:[/] " + ", ".join(keys))
    screen.err += [f"[yellow]warning:[/] {warning}" for warning in comparison.warnings]
    if comparison.regressions:
        screen.out.append(f"[bold red]{len(comparison.regressions)} regression(s)[/]")
    if comparison.failing:
        screen.out.append(f"[bold red]{len(comparison.failing)} case(s) fail in head and not in base[/]")
    if not comparison.failed:
        undecided = len(comparison.inconclusive)
        screen.out.append("[green]no significant regression[/]" + (f" [yellow]({undecided} inconclusive)[/]" if undecided else ""))
    return screen
