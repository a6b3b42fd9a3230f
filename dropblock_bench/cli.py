"""The ``dbench`` command line: parse, call an engine, render with rich.

Heavy imports (torch, pandas, scipy) happen inside commands, so ``dbench --help`` is instant.
User mistakes raise :class:`~dropblock_bench.errors.DbenchError`; :func:`_user_errors`
turns them into one red line and exit code 2.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from dropblock_bench import __version__
from dropblock_bench.cli_support import DbenchCommand, DbenchGroup
from dropblock_bench.errors import DbenchError
from dropblock_bench.paths import check_distinct, check_output_file, check_output_folder

if TYPE_CHECKING:  # pragma: no cover - typing only
    from dropblock_bench.registry import Implementation
    from dropblock_bench.run.session import RunOutcome
    from dropblock_bench.verify.session import VerifyOutcome


app = typer.Typer(
    cls=DbenchGroup,
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


def _command(name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """``app.command(name)`` with dbench's command class (see :mod:`dropblock_bench.cli_support`)."""
    return app.command(name, cls=DbenchCommand)


console = Console()
error_console = Console(stderr=True)

USAGE_ERROR = 2
WIDE_TERMINAL = 110  # columns from which verify tables also show the statistic column


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn domain errors, and files that cannot be read or written, into one red line on
    stderr and exit code 2 (no traceback)."""
    try:
        yield
    except DbenchError as exc:
        error_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(USAGE_ERROR) from None
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        error_console.print(f"[bold red]error:[/] cannot use{where}: {exc.strerror or exc}", highlight=False)
        raise typer.Exit(USAGE_ERROR) from None


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"dbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version_callback, is_eager=True, metavar="", help="Print the version and exit."),
    ] = None,
) -> None:
    """Benchmark and verify DropBlock implementations for PyTorch."""


@_command("list")
def list_command(
    pattern: Annotated[
        str | None, typer.Argument(help="Only names matching this glob, e.g. 'fused*'.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print JSON instead of a table.")] = False,
    show_all: Annotated[
        bool, typer.Option("--all", metavar="", help="Also list the public implementations that are not installed, and how to install them.")
    ] = False,
) -> None:
    """List registered implementations and the contract each declares.

    The contract says how an implementation samples and scales its mask: **mask**
    (per-channel or shared across channels), **seeds** (valid: blocks fit inside the map;
    anywhere: blocks cut at the border), **gamma** (paper formula or naive p/k²) and
    **norm** (batch, sample, expected or none); and, shown under the description where they
    depart from the default, **anchor** (where an even block reaches), **clamp** (how a block
    larger than the map is cut) and **batch** (one mask per sample or per batch). Fields that
    depart from the paper's Algorithm 1 are marked with `*`.
    """
    from dropblock_bench.registry import default_registry

    registry = default_registry()
    with _user_errors():
        implementations = registry.implementations(pattern)
    missing = []
    if show_all:
        from dropblock_bench.implementations.peer_records import INSTALL_HINT, PEERS

        missing = [peer.record for peer in PEERS if not peer.installed()]
    if as_json:
        payload = {
            "implementations": [impl.as_dict() for impl in implementations],
            "not_installed": [{**impl.as_dict(), "install": INSTALL_HINT} for impl in missing],
            "plugin_errors": registry.plugin_errors,
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    from dropblock_bench.render import implementations_table

    if implementations:
        console.print(implementations_table(implementations))
    else:
        console.print(f"[yellow]no implementation matches {pattern!r}[/]")
    if missing:
        console.print(implementations_table(missing, title="Not installed (adapters ready)"))
        from rich.markup import escape

        console.print(f"install them with: [bold]{escape(INSTALL_HINT)}[/] (torchvision needs the torch it was built for)", highlight=False)
    for message in registry.plugin_errors:
        error_console.print(f"[yellow]warning:[/] {message}", highlight=False)


ImplOption = Annotated[
    list[str] | None,
    typer.Option(
        "--impl",
        "-i",
        metavar="NAME",
        help="Implementation: a name, a glob ('fused*'), a comma list, or path/to/file.py:callable. Repeatable. Default: all registered.",
    ),
]


def _contract_option(field: str, choices: str, default: str, what: str) -> object:
    return typer.Option(f"--{field}", help=f"For file.py:callable: {what}: {choices} (default {default}).", metavar=field.upper())


@_command("verify")
def verify_command(
    impl: ImplOption = None,
    seed: Annotated[int, typer.Option(metavar="SEED", help="Seed of every random draw; a fixed seed makes the run reproducible.")] = 0,
    quick: Annotated[
        bool, typer.Option("--quick", metavar="", help="Fewer cases and smaller samples: seconds instead of tens of seconds, less power.")
    ] = False,
    strict: Annotated[bool, typer.Option("--strict", metavar="", help="Also exit 1 on warnings (conventions such as p=1 not giving all zeros).")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", metavar="", help="Show every check in a table, not only the ones that did not pass.")] = False,
    json_path: Annotated[Path | None, typer.Option("--json", metavar="FILE", help="Write every check as JSON to this file (rewritten as each implementation finishes).")] = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", metavar="FILE", help="Write one CSV row per check to this file (rewritten as each implementation finishes).")] = None,
    mask: Annotated[str | None, _contract_option("mask", "per-channel | shared", "per-channel", "one mask per channel or one per sample")] = None,
    seeds: Annotated[str | None, _contract_option("seeds", "valid | anywhere", "valid", "where block seeds fall")] = None,
    gamma: Annotated[str | None, _contract_option("gamma", "paper | naive", "paper", "seed probability rule")] = None,
    norm: Annotated[str | None, _contract_option("norm", "batch | sample | expected | none", "batch", "rescaling of kept units")] = None,
    anchor: Annotated[str | None, _contract_option("anchor", "centre | up-left | down-right", "centre", "where a block lies around its seed")] = None,
    clamp: Annotated[str | None, _contract_option("clamp", "min | per-axis", "min", "how a block larger than the map is cut")] = None,
    batch: Annotated[str | None, _contract_option("batch", "per-sample | shared", "per-sample", "one mask per sample or one per batch")] = None,
) -> None:
    """Check DropBlock implementations against the exact math of the contract each declares.

    Every implementation is judged against its **own** contract (see `dbench list`): API
    (shape, dtype, no mutation, seeding, p=0, eval, p=1, in place), drop **rate**,
    **dispersion** of per-map drop counts, per-**position** drop frequency, **block** shape,
    **independence** across channels, samples and calls, **normalisation**, **gradient**, and
    float16/bfloat16, on contiguous, channels_last and strided inputs. Maps come from many
    separate calls, and each test treats the call as its unit. Sample sizes give a >= 99 %
    chance to catch a 10 % error in the drop rate in every case, with a family-wise
    false-alarm rate <= 1 % per implementation (Holm).

    Each check ends **fail** (a broken contract or hard rule), **warn** (a convention, e.g.
    p=1 not all zeros, or p=0 off by a few ulp), **note** (where the contract departs from the
    paper, and by how much), **pass** or **skip** (not exercised, with the reason).

    Your own function `f(x, p, block_size)` is verified with `--impl my_file.py:f`; it is held
    to the paper's contract unless you say otherwise with `--mask`, `--seeds`, `--gamma`,
    `--norm`, `--anchor`, `--clamp`, `--batch`.

    Exit codes: 0 nothing failed (warnings allowed unless `--strict`), 1 a check failed,
    2 bad usage, 130 interrupted (finished implementations are kept in --json/--csv).
    """
    overrides = {"mask": mask, "seeds": seeds, "gamma": gamma, "norm": norm, "anchor": anchor, "clamp": clamp, "batch": batch}
    with _user_errors():
        check_distinct({"--json": json_path, "--csv": csv_path})
        check_output_file(json_path, "--json")
        check_output_file(csv_path, "--csv")
        implementations = _resolve(impl, overrides)
        if any(overrides.values()) and not any(i.origin.endswith(".py") for i in implementations):
            error_console.print("[yellow]warning:[/] contract flags (--mask ... --batch) only apply to file.py:callable implementations")

    from dropblock_bench.verify import VerifySettings, count_steps
    from dropblock_bench.verify.session import verify_all

    settings = VerifySettings.for_mode(quick=quick, seed=seed)
    progress = _progress()
    with progress, _user_errors():
        task = progress.add_task("verify", total=len(implementations) * count_steps(settings))
        outcome = verify_all(
            implementations, settings, json_path=json_path, csv_path=csv_path,
            on_step=lambda name, step: progress.update(task, advance=1, description=f"{name}: {step}"),
        )  # fmt: skip
    _print_verify(outcome, verbose=verbose, strict=strict, quick=quick, saved=" and ".join(str(f) for f in (json_path, csv_path) if f))


def _print_verify(outcome: VerifyOutcome, *, verbose: bool, strict: bool, quick: bool, saved: str) -> None:
    """Every report, then the one-line summary; exits 130 (interrupted) or 1 (failed, or warned
    under ``--strict``)."""
    from dropblock_bench.render import verify_lines

    for report in outcome.reports:
        for line in verify_lines(report, verbose=verbose, width=console.width):
            console.print(line, highlight=False)
        console.print()
    reports, failed, warned = outcome.reports, outcome.failed, outcome.warned
    if outcome.interrupted:
        kept = f"{len(reports)} of {outcome.requested} implementations verified"
        error_console.print(f"[yellow]interrupted: {kept}[/]" + (f"; they are in {saved}" if saved and reports else ""), highlight=False)
        raise typer.Exit(130)
    summary = (
        f"{len(reports)} implementation(s) verified{' (quick)' if quick else ''}:"
        f" {len(reports) - len(failed)} passed" + (f" ({len(warned)} with warnings)" if warned else "")
    )
    if failed:
        names = "; ".join(f"{r.implementation} ({', '.join(sorted({c.check for c in r.failures}))})" for r in failed)
        console.print(f"[bold red]{summary}, {len(failed)} failed:[/] {names}", highlight=False)
        raise typer.Exit(1)
    if strict and warned:
        names = "; ".join(f"{r.implementation} ({', '.join(sorted({c.check for c in r.warnings}))})" for r in warned)
        console.print(f"[bold red]{summary}; --strict fails on warnings:[/] {names}", highlight=False)
        raise typer.Exit(1)
    console.print(f"[bold green]{summary}.[/]", highlight=False)


ListOption = list[str] | None


@_command("run")
def run_command(
    impl: ImplOption = None,
    shape: Annotated[ListOption, typer.Option("--shape", "-s", metavar="NxCxHxW", help="Input shape NxCxHxW, e.g. 32x256x56x56. Repeatable or comma list.")] = None,
    preset: Annotated[
        str | None, typer.Option(metavar="quick|resnet50", help="quick: 8x256x56x56 and 8x1024x14x14, forward and forward+backward (the default). resnet50: the 4 ResNet-50 stage shapes at batch 32.")
    ] = None,
    block_size: Annotated[ListOption, typer.Option("--block-size", "-k", metavar="K", help="Block size(s). Default 7.")] = None,
    p: Annotated[ListOption, typer.Option("--p", metavar="P", help="Drop probability(ies) in [0, 1]. Default 0.1.")] = None,
    dtype: Annotated[ListOption, typer.Option(metavar="DTYPE", help="float32 | float16 | bfloat16 | float64. Default float32.")] = None,
    device: Annotated[ListOption, typer.Option(metavar="DEVICE", help="cpu | cuda | cuda:N | mps. Absent devices are skipped. Default cpu.")] = None,
    mode: Annotated[str | None, typer.Option(metavar="forward|backward|both", help="backward means forward+backward; both times each. Default: both for the quick preset, forward otherwise.")] = None,
    inplace: Annotated[bool, typer.Option("--inplace", metavar="", help="Also time inplace=True (against x.mul_(c)).")] = False,
    threads: Annotated[int | None, typer.Option(metavar="N", help="torch CPU threads (torch.set_num_threads).", min=1)] = None,
    min_time: Annotated[float, typer.Option("--min-time", metavar="SECONDS", help="Seconds of timing per case (and as much for its floor). Longer gives tighter intervals.", min=0.01)] = 0.15,
    rounds: Annotated[
        int,
        typer.Option(metavar="N", help="Rounds the --min-time of each case is split over; in each, every case of a shape and mode runs one block in "
                     "turn. More rounds average the machine's slow drifts better (each block still runs at least one call); "
                     "--json keeps each round's sample count, so rounds can be compared as pairs.", min=1),
    ] = 3,
    memory: Annotated[bool, typer.Option("--memory/--no-memory", metavar="", help="Measure peak memory and bytes saved for backward.")] = True,
    csv_path: Annotated[Path | None, typer.Option("--csv", metavar="FILE", help="Write one row per case, as each finishes.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", metavar="FILE", help="Write meta, cases and raw samples, as each finishes.")] = None,
    shard_spec: Annotated[str | None, typer.Option("--shard", metavar="I/N", help="Run slice I of N of the matrix, e.g. 2/4; combine with `dbench merge`.")] = None,
    malloc: Annotated[
        str,
        typer.Option(
            metavar="steady|system", help="steady: every allocation reuses memory already faulted in (glibc: no fresh mappings, heap kept), so no "
            "call pays page faults and times measure the implementations, whatever ran before. system: the allocator as "
            "your program has it, page faults on fresh outputs included (they vary with what ran before).",
        ),
    ] = "steady",
    exclude: Annotated[
        ListOption,
        typer.Option(
            metavar="FIELD=VALUES", help="Leave out the cases matching every FIELD=VALUES given (space-separated; fields impl, dtype, shape, mode, "
            "device, block, p, inplace; impl takes globs). Repeatable. E.g. --exclude 'impl=torchvision,timm* dtype=float16,bfloat16'."
        ),
    ] = None,
) -> None:
    """Time DropBlock implementations across shapes, dtypes, devices, block sizes and drop rates.

    With no options: a quick matrix over the built-ins (under a minute on 2 cores). Every case
    is timed with torch.utils.benchmark against a memory-floor op (`x * c`) interleaved in the
    same process, so **×floor** is meaningful on a noisy machine; **×best** compares the
    implementations of one setting. The implementations and dtypes of one shape and mode take
    turns, block by block, so both comparisons see the same machine. Each case reports the
    median, IQR, a 95 % confidence interval of the median, effective GB/s, peak memory above the
    input, and for backward the bytes saved for backward. Missing devices, unsupported dtypes and
    failures are recorded as skipped or error rows and the run goes on; Ctrl-C keeps every
    finished row on disk. By default no call pays page faults (`--malloc steady`).

    Example: `dbench run --preset resnet50 --impl paper,fused --csv out.csv`

    Exit codes: 0 every case ran or was skipped, 1 a case raised (its error is listed under the
    table and its row written to the files), 2 bad usage, 130 interrupted.
    """
    from dropblock_bench.run.session import RunRequest, matrix_spec, plan, run_session

    with _user_errors():
        check_distinct({"--json": json_path, "--csv": csv_path})
        check_output_file(json_path, "--json")
        check_output_file(csv_path, "--csv")
        implementations = _run_implementations(impl)
        spec = matrix_spec(list(implementations), shape=shape, preset=preset, block_size=block_size, p=p, dtype=dtype,
                           device=device, mode=mode, inplace=inplace)  # fmt: skip
        request = RunRequest(
            implementations, spec, exclusions=exclude or (), shard=shard_spec, min_time_s=min_time, rounds=rounds,
            measure_memory=memory, threads=threads, malloc=malloc, csv_path=csv_path, json_path=json_path,
        )  # fmt: skip
        cases = plan(request)
    if not cases:
        console.print(f"[yellow]{'this shard of ' if shard_spec else ''}the matrix is empty"
                      f"{' after --exclude' if exclude else ''}; nothing to run[/]")
    progress = _progress(with_eta=True)
    with progress, _user_errors():
        task = progress.add_task("run", total=len(cases))
        outcome = run_session(
            request,
            cases,
            on_start=lambda case: progress.update(task, description=f"{case.implementation} {case.shape_label} {case.mode}"),
            on_record=lambda record: progress.advance(task),
        )
    if not cases:
        return
    _print_run(outcome, malloc, saved=" and ".join(str(path) for path in (csv_path, json_path) if path))


def _print_run(outcome: RunOutcome, malloc: str, saved: str) -> None:
    """The table, its notes, the run's conditions and the one-line summary; exits 130 or 1."""
    from dropblock_bench.render import run_notes, run_table
    from dropblock_bench.run.records import CaseStatus

    records = outcome.records
    if outcome.count(CaseStatus.OK):
        console.print(run_table(records))
    for line in run_notes(records):
        console.print(line, highlight=False)
    for name, status in outcome.backends.items():
        console.print(f"[dim]{name}: {status}[/]", highlight=False)
    if malloc == "steady":
        console.print(f"[dim]allocator: {outcome.allocator or 'system (steady needs glibc)'}[/]", highlight=False)
    if outcome.interrupted:
        error_console.print(f"[yellow]interrupted after {len(records)} of {len(outcome.cases)} cases[/]" + (f"; they are in {saved}" if saved else ""))
        raise typer.Exit(130)
    console.print(
        f"{len(records)} cases: {outcome.count(CaseStatus.OK)} ok, {outcome.count(CaseStatus.SKIPPED)} skipped,"
        f" {outcome.count(CaseStatus.ERROR)} error" + (f"; written to {saved}" if saved else ""),
        highlight=False,
    )
    if outcome.count(CaseStatus.ERROR):
        raise typer.Exit(1)


def _run_implementations(specs: list[str] | None) -> dict[str, Implementation]:
    """Name -> record for `dbench run`: the ones named, or the built-ins."""
    from dropblock_bench.registry import default_registry

    if specs:
        return {i.name: i for i in _resolve(specs, {})}
    return {i.name: i for i in default_registry().implementations() if i.origin == "dropblock-bench"}


@_command("merge")
def merge_command(
    files: Annotated[list[Path], typer.Argument(help="`dbench run --json` files, e.g. the shards of one matrix.")],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="Where to write the merged JSON.")],
) -> None:
    """Combine `dbench run --json` files (e.g. `--shard` slices) into one."""
    from dropblock_bench.run.files import merge_runs

    with _user_errors():
        merged = merge_runs(files)  # inputs first: a failed merge leaves no folder behind
        check_output_file(output, "--output")
        output.write_text(json.dumps(merged, indent=1) + "\n")
    console.print(f"merged {len(merged['cases'])} cases from {len(files)} files into {output}", highlight=False)


@_command("compare")
def compare_command(
    base: Annotated[Path, typer.Argument(help="Results of the base (e.g. the merge base): `dbench run --json` or pytest-benchmark JSON.")],
    head: Annotated[Path, typer.Argument(help="Results of the head (your change), same kind of file.")],
    threshold: Annotated[float, typer.Option(metavar="FRACTION", help="Smallest slowdown that counts, as a fraction (0.05 = 5 %).")] = 0.05,
    alpha: Annotated[float, typer.Option(metavar="LEVEL", help="Significance level of the Mann-Whitney U test.")] = 0.01,
    output_format: Annotated[str, typer.Option("--format", metavar="table|markdown", help="table (rich, on screen) or markdown (for a PR comment or $GITHUB_STEP_SUMMARY).")] = "table",
    csv_path: Annotated[Path | None, typer.Option("--csv", metavar="FILE", help="Write one row per matched case.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", metavar="FILE", help="Write the whole comparison as JSON.")] = None,
) -> None:
    """Compare two timing results and fail on a real regression, not on noise.

    A case is a **regression** only if its median slowed down by at least `--threshold` **and**
    a Mann-Whitney U test on the raw samples gives p < `--alpha`; otherwise it shows `~`
    with p and n, as benchstat does. Cases are matched by implementation, device, dtype,
    shape, block size, p and mode (pytest-benchmark files: by test name); unmatched ones are
    listed. A geometric-mean row sums up.

    A case that fails (an error row) in head but not in base counts as a regression; one that
    fails in both is listed as still failing.

    Exit codes: 0 no significant regression, 1 at least one regression or newly failing case,
    2 bad input.
    """
    from dropblock_bench.compare import compare_files, comparison_rows, markdown_report

    if output_format not in ("table", "markdown"):
        with _user_errors():
            raise DbenchError(f"unknown --format {output_format!r}: use table or markdown")
    with _user_errors():
        inputs = {"base": base} if head.resolve() == base.resolve() else {"base": base, "head": head}  # a file vs itself is fine
        check_distinct({**inputs, "--csv": csv_path, "--json": json_path})
        check_output_file(csv_path, "--csv")
        check_output_file(json_path, "--json")
        comparison = compare_files(base, head, threshold=threshold, alpha=alpha)
    if output_format == "markdown":
        typer.echo(markdown_report(comparison, base.name, head.name), nl=False)
    else:
        from dropblock_bench.render import compare_table

        console.print(compare_table(comparison, base.name, head.name, show_interval=console.width >= WIDE_TERMINAL))
        for title, keys in (("only in base", comparison.only_in_base), ("only in head", comparison.only_in_head)):
            if keys:
                console.print(f"[yellow]{title}:[/] " + ", ".join(keys), highlight=False)
        for warning in comparison.warnings:
            error_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
        regressions = comparison.regressions
        if regressions:
            console.print(f"[bold red]{len(regressions)} regression(s)[/]", highlight=False)
        if comparison.failing:
            console.print(f"[bold red]{len(comparison.failing)} case(s) fail in head and not in base[/]", highlight=False)
        if not comparison.failed:
            console.print("[green]no significant regression[/]")
    with _user_errors():
        if csv_path:
            import csv

            rows = comparison_rows(comparison)
            with csv_path.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["key"])
                writer.writeheader()
                writer.writerows(rows)
        if json_path:
            json_path.write_text(json.dumps(comparison.as_dict(), indent=1) + "\n")
    if comparison.failed:
        raise typer.Exit(1)


@_command("report")
def report_command(
    run_json: Annotated[Path, typer.Argument(help="A `dbench run --json` file.")],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FOLDER", help="Folder to write README.md and the PNG plots into, e.g. reports/NAME/.")],
    verify_json: Annotated[Path | None, typer.Option("--verify", metavar="FILE", help="A `dbench verify --json` file to include.")] = None,
    seed: Annotated[int, typer.Option(metavar="SEED", help="Seed of the example masks.")] = 0,
) -> None:
    """Write a markdown report with plots: time and ×floor per implementation and shape, the
    drop rate each implementation delivers vs the requested p, and example masks.

    Needs matplotlib: `pip install 'dropblock-bench[plots]'`.
    """
    from dropblock_bench.report import write_report

    with _user_errors():
        check_output_folder(output, "--output")
        path = write_report(run_json, output, verify_json, seed=seed)
    console.print(f"report written to {path}", highlight=False)


@_command("show")
def show_command(
    impl: Annotated[str, typer.Option("--impl", "-i", metavar="NAME", help="Implementation: a name or path/to/file.py:callable.")] = "fused",
    shape: Annotated[str, typer.Option("--shape", "-s", metavar="NxCxHxW", help="NxCxHxW; the first sample's channels are drawn.")] = "1x3x14x14",
    block_size: Annotated[int, typer.Option("--block-size", "-k", metavar="K", help="Block size.", min=1)] = 5,
    p: Annotated[float, typer.Option("--p", metavar="P", help="Drop probability.", min=0.0, max=1.0)] = 0.2,
    seed: Annotated[int, typer.Option(metavar="SEED", help="Seed of the draw.")] = 0,
    png: Annotated[Path | None, typer.Option("--png", metavar="FILE", help="Also save the mask as a PNG (needs matplotlib).")] = None,
) -> None:
    """Draw one sampled mask in the terminal (█ dropped, · kept), channels side by side."""
    from dropblock_bench.run import matrix

    with _user_errors():
        check_output_file(png, "--png")
        implementations = _resolve([impl], {})
        if len(implementations) > 1:
            names = ", ".join(i.name for i in implementations)
            raise DbenchError(f"--impl {impl!r} names {len(implementations)} implementations ({names}); show draws one")
        [implementation] = implementations
        shape_tuple = matrix.parse_shape(shape)
    from dropblock_bench.render import mask_text
    from dropblock_bench.verify.sampling import sample_mask

    try:
        mask = sample_mask(implementation, implementation.load(), shape_tuple, p, block_size, seed)
    except Exception as exc:  # noqa: BLE001 - the implementation's failure, reported in one line
        error_console.print(f"[bold red]error:[/] {implementation.name} raised {type(exc).__name__}: {exc}", highlight=False)
        raise typer.Exit(1) from None
    rate = mask[0].float().mean().item()
    title = f"{implementation.name}: {shape} k={block_size} p={p:g} seed={seed} — {rate:.1%} dropped ({implementation.contract})"
    console.print(mask_text(mask[0, :4], title))
    if mask.shape[1] > 4:
        console.print(f"[dim]channels 1-4 of {mask.shape[1]} drawn[/]", highlight=False)
    if png:
        from dropblock_bench import plots

        with _user_errors():
            figure = plots.masks_figure({implementation.name: mask[:1, :4]}, title)
            figure.savefig(png, dpi=110)
        console.print(f"saved {png}", highlight=False)


def _progress(with_eta: bool = False):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    if with_eta:
        columns.append(TimeRemainingColumn())
    return Progress(*columns, console=error_console, transient=True)


def _resolve(specs: list[str] | None, overrides: dict[str, str | None]) -> list[Implementation]:
    """Implementations named on the command line, or every registered one."""
    from dropblock_bench.registry import default_registry, resolve_implementations

    registry = default_registry()
    implementations = resolve_implementations(specs, overrides) if specs else registry.implementations()
    for message in registry.plugin_errors:
        error_console.print(f"[yellow]warning:[/] {message}", highlight=False)
    if not implementations:
        raise DbenchError("no implementation to work on; see `dbench list`")
    return implementations


LOG_WIDTH = 160  # columns for output to a pipe or file (a CI log), where rich would assume 80


def main() -> None:
    """Entry point of the ``dbench`` console script."""
    import os

    for stream in (console, error_console):
        if not stream.is_terminal and "COLUMNS" not in os.environ:
            stream.width = LOG_WIDTH  # tables are not cut to 80 columns in logs
    app()
