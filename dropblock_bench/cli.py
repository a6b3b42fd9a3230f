"""The ``dbench`` command line: parse, call an engine, render with rich.

Heavy imports (torch, pandas, scipy) happen inside commands, so ``dbench --help`` is instant.
User mistakes raise :class:`~dropblock_bench.errors.DbenchError`; :func:`_user_errors`
turns them into one red line and exit code 2.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from dropblock_bench import __version__
from dropblock_bench.errors import DbenchError

app = typer.Typer(
    name="dbench",
    help=(
        "Benchmark and verify DropBlock implementations for PyTorch.\n\n"
        "Implementations are named by registry name (see `dbench list`), a glob such as "
        "'fused*', or 'path/to/file.py:callable' for your own f(x, p, block_size)."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
console = Console()
error_console = Console(stderr=True)

USAGE_ERROR = 2
WIDE_TERMINAL = 110  # columns from which verify tables also show the statistic column


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn domain errors into one red line on stderr and exit code 2 (no traceback)."""
    try:
        yield
    except DbenchError as exc:
        error_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(USAGE_ERROR) from None


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"dbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Benchmark and verify DropBlock implementations for PyTorch."""


@app.command("list")
def list_command(
    pattern: Annotated[
        Optional[str], typer.Argument(help="Only names matching this glob, e.g. 'fused*'.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List registered implementations and the contract each declares.

    The contract says how an implementation samples and scales its mask: **mask**
    (per-channel or shared across channels), **seeds** (valid: blocks fit inside the map;
    anywhere: blocks cut at the border), **gamma** (paper formula or naive p/k²) and
    **norm** (batch, sample, expected or none). Fields that depart from the paper's
    Algorithm 1 are marked with `*`.
    """
    from dropblock_bench.registry import default_registry

    registry = default_registry()
    with _user_errors():
        implementations = registry.implementations(pattern)
    if as_json:
        payload = {
            "implementations": [impl.as_dict() for impl in implementations],
            "plugin_errors": registry.plugin_errors,
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    from dropblock_bench.render import implementations_table

    if implementations:
        console.print(implementations_table(implementations))
    else:
        console.print(f"[yellow]no implementation matches {pattern!r}[/]")
    for message in registry.plugin_errors:
        error_console.print(f"[yellow]warning:[/] {message}", highlight=False)


ImplOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--impl",
        "-i",
        help="Implementation: a name, a glob ('fused*'), a comma list, or path/to/file.py:callable. Repeatable. Default: all registered.",
    ),
]


@app.command("verify")
def verify_command(
    impl: ImplOption = None,
    seed: Annotated[int, typer.Option(help="Seed of every random draw; a fixed seed makes the run reproducible.")] = 0,
    quick: Annotated[
        bool, typer.Option("--quick", help="Fewer cases and smaller samples: seconds instead of tens of seconds, less power.")
    ] = False,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write every check as JSON to this file.")] = None,
    csv_path: Annotated[Optional[Path], typer.Option("--csv", help="Write one CSV row per check to this file.")] = None,
    mask: Annotated[
        Optional[str], typer.Option(help="For file.py:callable: per-channel | shared (default per-channel).", metavar="MASK")
    ] = None,
    seeds: Annotated[
        Optional[str], typer.Option(help="For file.py:callable: valid | anywhere (default valid).", metavar="SEEDS")
    ] = None,
    gamma: Annotated[
        Optional[str], typer.Option(help="For file.py:callable: paper | naive (default paper).", metavar="GAMMA")
    ] = None,
    norm: Annotated[
        Optional[str],
        typer.Option(help="For file.py:callable: batch | sample | expected | none (default batch).", metavar="NORM"),
    ] = None,
) -> None:
    """Check DropBlock implementations against the exact math of the contract each declares.

    Every implementation is judged against its **own** contract (see `dbench list`), with
    p-values: API (shapes, dtypes, no mutation, seeding, p=0, eval, p=1, in place), drop
    **rate**, **dispersion** of per-map drop counts, per-**position** drop frequency, **block**
    shape, **independence** across channels, samples and calls, **normalisation**, **gradient**,
    and float16/bfloat16. Sample sizes give a >= 99 % chance to catch a 10 % error in the drop
    rate, with a family-wise false-alarm rate <= 1 % per implementation (Holm).
    Where a contract departs from the paper, the report says by how much.

    Your own function `f(x, p, block_size)` is verified with `--impl my_file.py:f`; it is held
    to the paper's contract unless you say otherwise with `--mask`, `--seeds`, `--gamma`, `--norm`.

    Exit codes: 0 every check passed, 1 a check failed, 2 bad usage.
    """
    overrides = {"mask": mask, "seeds": seeds, "gamma": gamma, "norm": norm}
    with _user_errors():
        implementations = _resolve(impl, overrides)
        if any(overrides.values()) and not any(i.origin.endswith(".py") for i in implementations):
            error_console.print("[yellow]warning:[/] --mask/--seeds/--gamma/--norm only apply to file.py:callable implementations")

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from dropblock_bench.render import verify_table
    from dropblock_bench.verify import VerifySettings, count_steps, verify_implementation
    from dropblock_bench.verify.export import write_csv, write_json

    settings = VerifySettings.for_mode(quick=quick, seed=seed)
    reports = []
    progress = Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), TimeElapsedColumn(), console=error_console, transient=True
    )
    with progress:
        task = progress.add_task("verify", total=len(implementations) * count_steps(settings))

        for implementation in implementations:

            def advance(step: str, name: str = implementation.name) -> None:
                progress.update(task, advance=1, description=f"{name}: {step}")

            reports.append(verify_implementation(implementation, settings, progress=advance))
    for report in reports:
        console.print(verify_table(report, show_statistic=console.width >= WIDE_TERMINAL))
        for failure in report.failures:
            console.print(f"  [red]✗ {failure.check}[/] [dim]{failure.case}[/]: {failure.reason}", highlight=False)
        if report.departures_from_paper:
            fields = ", ".join(f"{f}={report.contract[f]}" for f in report.departures_from_paper)
            console.print(f"  [yellow]departs from the paper:[/] {fields}", highlight=False)
            for line in report.paper_differences:
                console.print(f"    [yellow]•[/] {line}", highlight=False)
        for note in report.notes:
            console.print(f"  [dim]{note}[/]", highlight=False)
        console.print()
    if json_path:
        write_json(json_path, reports, settings)
    if csv_path:
        write_csv(csv_path, reports)
    failed = [r for r in reports if not r.passed]
    summary = f"{len(reports)} implementation(s) verified{' (quick)' if quick else ''}: {len(reports) - len(failed)} passed"
    if failed:
        names = "; ".join(f"{r.implementation} ({', '.join(sorted({c.check for c in r.failures}))})" for r in failed)
        console.print(f"[bold red]{summary}, {len(failed)} failed:[/] {names}", highlight=False)
        raise typer.Exit(1)
    console.print(f"[bold green]{summary}.[/]", highlight=False)


def _resolve(specs: Optional[list[str]], overrides: dict[str, Optional[str]]) -> list:
    """Implementations named on the command line, or every registered one."""
    from dropblock_bench.registry import default_registry, resolve_implementations

    registry = default_registry()
    implementations = resolve_implementations(specs, overrides) if specs else registry.implementations()
    for message in registry.plugin_errors:
        error_console.print(f"[yellow]warning:[/] {message}", highlight=False)
    if not implementations:
        raise DbenchError("no implementation to work on; see `dbench list`")
    return implementations


def main() -> None:
    """Entry point of the ``dbench`` console script."""
    app()
