"""The ``dbench`` command line: parse, call an engine, render with rich.

Heavy imports (torch, pandas, scipy) happen inside commands, so ``dbench --help`` is instant.
User mistakes raise :class:`~dropblock_bench.errors.DbenchError`; :func:`_user_errors`
turns them into one red line and exit code 2.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from dropblock_bench import __version__, screens
from dropblock_bench import cli_options as options
from dropblock_bench.cli_support import DbenchCommand, DbenchGroup, progress_bar, user_errors
from dropblock_bench.errors import DbenchError
from dropblock_bench.paths import check_distinct, check_output_file, check_output_folder

if TYPE_CHECKING:  # pragma: no cover - typing only
    from rich.progress import Progress

    from dropblock_bench.compare import Comparison
    from dropblock_bench.registry import Implementation
    from dropblock_bench.run.matrix import MatrixSpec


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


def _user_errors() -> contextlib.AbstractContextManager[None]:
    """Domain errors and unusable files as one red line and exit 2 (:func:`cli_support.user_errors`)."""
    return user_errors(error_console)


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
    pattern: Annotated[str | None, typer.Argument(help="Only names matching this glob, e.g. 'fused*'.")] = None,
    family: options.FamilyName = None,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print JSON instead of a table.")] = False,
    show_all: options.ShowAll = False,
    backends: options.Backends = False,
) -> None:
    """List registered implementations, family by family, and the contract each declares.

    Five families: **dropblock2d**, **dropblock3d**, **drop-path** (stochastic depth),
    **spatial-dropout** and **cutout** (`--family NAME` lists one). Each table says the call
    its implementations take and marks with `*` the contract fields that depart from the
    family's reference (docs/families.md describes every axis).

    A DropBlock contract says how an implementation samples and scales its mask: **mask**
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
        family = options.check_family(family)
        implementations = registry.implementations(pattern, family)
    missing = [(i, hint) for i, hint in registry.not_installed() if family in (None, i.family)] if show_all else []
    paths = {i.name: status for i in implementations if backends and (status := i.backend_status())}
    if as_json:
        typer.echo(json.dumps(screens.listing_payload(implementations, missing, registry.plugin_errors, paths), indent=2))
        return
    _show(screens.list_screen(implementations, missing, pattern, registry.plugin_errors, paths))


@_command("verify")
def verify_command(
    impl: options.Impl = None,
    family: options.FamilyName = None,
    seed: options.VerifySeed = 0,
    quick: options.Quick = False,
    strict: options.Strict = False,
    verbose: options.Verbose = False,
    json_path: options.VerifyJson = None,
    csv_path: options.VerifyCsv = None,
    mask: options.Mask = None,
    seeds: options.Seeds = None,
    gamma: options.Gamma = None,
    norm: options.Norm = None,
    anchor: options.Anchor = None,
    clamp: options.Clamp = None,
    batch: options.Batch = None,
    contract: options.ContractFields = None,
) -> None:
    """Check implementations against the exact math of the contract each declares.

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

    The other families (`--family dropblock3d|drop-path|spatial-dropout|cutout`; with no
    `--family` and no `--impl`, every family) are judged the same way against their own laws:
    API, rate, dispersion, position, the **structure** that defines the family (whole rows,
    maps, k³ blocks, squares shared by channels), independence, normalisation, gradient, half
    precision, and a **variance-shift** note (Var(train) / Var(eval)). A file callable is
    taken as `--family`'s signature (`f(x, p)` for drop-path, `f(x, n_holes, length)` for
    cutout) with that family's reference contract, or the fields you give with `--contract`
    (e.g. `--family drop-path --contract unit=batch,scale=eval-time`).

    Exit codes: 0 nothing failed (warnings allowed unless `--strict`), 1 a check failed,
    2 bad usage, 130 interrupted (finished implementations are kept in --json/--csv).
    """
    overrides: dict[str, str | None] = {"mask": mask, "seeds": seeds, "gamma": gamma, "norm": norm, "anchor": anchor,
                                        "clamp": clamp, "batch": batch}  # fmt: skip
    with _user_errors():
        overrides |= options.parse_contract_fields(contract)
        check_distinct({"--json": json_path, "--csv": csv_path})
        check_output_file(json_path, "--json")
        check_output_file(csv_path, "--csv")
        family = options.check_family(family)
        implementations = _resolve(impl, overrides, family=family)
        if any(overrides.values()) and not any(i.origin.endswith(".py") for i in implementations):
            error_console.print("[yellow]warning:[/] contract flags (--mask ... --batch, --contract) only apply to file.py:callable"
                                " implementations")  # fmt: skip

    from dropblock_bench.verify import VerifySettings
    from dropblock_bench.verify.session import steps_of, verify_all

    settings = VerifySettings.for_mode(quick=quick, seed=seed)
    progress = _progress()
    with progress, _user_errors():
        task = progress.add_task("verify", total=sum(steps_of(i, settings) for i in implementations))
        outcome = verify_all(
            implementations, settings, json_path=json_path, csv_path=csv_path,
            on_step=lambda name, step: progress.update(task, advance=1, description=f"{name}: {step}"),
        )  # fmt: skip
    _show(screens.verify_screen(outcome, verbose=verbose, strict=strict, quick=quick, width=console.width,
                        saved=" and ".join(str(f) for f in (json_path, csv_path) if f)))  # fmt: skip


ListOption = list[str] | None


@_command("run")
def run_command(
    impl: options.Impl = None,
    family: options.FamilyName = None,
    shape: options.Shape = None,
    preset: options.Preset = None,
    block_size: options.BlockSize = None,
    p: options.P = None,
    holes: options.Holes = None,
    dtype: options.Dtype = None,
    device: options.Device = None,
    mode: options.Mode = None,
    inplace: options.Inplace = False,
    threads: options.Threads = None,
    min_time: options.MinTime = 0.15,
    rounds: options.Rounds = 8,
    memory: options.Memory = True,
    csv_path: options.Csv = None,
    json_path: options.Json = None,
    shard_spec: options.Shard = None,
    malloc: options.Malloc = "steady",
    exclude: options.Exclude = None,
) -> None:
    """Time implementations across shapes, dtypes, devices, block sizes and drop rates.

    With no options: each family's quick preset over its built-ins (under a minute on 2
    cores); `--family NAME` times one family, `--preset NAME` the shapes each family is used at
    (e.g. `--family drop-path --preset vit`). Peers run when named with `--impl`. Every case
    is timed with torch.utils.benchmark against a memory-floor op (`x * c`) interleaved in the
    same process, so **×floor** is meaningful on a noisy machine; **×best** compares the
    implementations of one setting. The implementations and dtypes of one shape and mode take
    turns, block by block, so both comparisons see the same machine. Each case reports the
    median, IQR, a 95 % confidence interval of the median, effective GB/s, peak memory above the
    input, and for backward the bytes saved for backward. Missing devices, unsupported dtypes and
    failures are recorded as skipped or error rows and the run goes on; Ctrl-C keeps every
    finished row on disk. By default no call pays page faults (`--malloc steady`).

    Example: `dbench run --preset resnet50 --impl paper,fused --csv out.csv`

    Cutout takes `--holes` and its hole length as `--block-size`; DropPath and SpatialDropout
    take no block size.

    Exit codes: 0 every case ran or was skipped, 1 a case raised (its error is listed under the
    table and its row written to the files), 2 bad usage, 130 interrupted.
    """
    from dropblock_bench.run.session import RunRequest, plan, run_session

    with _user_errors():
        check_distinct({"--json": json_path, "--csv": csv_path})
        check_output_file(json_path, "--json")
        check_output_file(csv_path, "--csv")
        implementations, specs = _run_matrix(impl, family, shape=shape, preset=preset, block_size=block_size, p=p,
                                             holes=holes, dtype=dtype, device=device, mode=mode, inplace=inplace)  # fmt: skip
        request = RunRequest(
            implementations, specs, exclusions=exclude or (), shard=shard_spec, min_time_s=min_time, rounds=rounds,
            measure_memory=memory, threads=threads, malloc=malloc, csv_path=csv_path, json_path=json_path,
        )  # fmt: skip
        cases = plan(request)
    progress = _progress(with_eta=True)
    with progress, _user_errors():
        task = progress.add_task("run", total=len(cases))
        outcome = run_session(request, cases, on_record=lambda record: progress.advance(task),
                              on_start=lambda c: progress.update(task, description=f"{c.implementation} {c.shape_label} {c.mode}"))  # fmt: skip
    saved = " and ".join(str(path) for path in (csv_path, json_path) if path)
    _show(screens.run_screen(outcome, malloc=malloc, saved=saved, shard=shard_spec, excluded=bool(exclude)))


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
    head: Annotated[Path | None, typer.Argument(help="Results of the head (your change), same kind of file; leave out with --base-impl/--head-impl.")] = None,
    threshold: options.Threshold = 0.05,
    alpha: options.Alpha = 0.01,
    measure: options.Measure = "ratio-to-floor",
    base_impl: Annotated[str | None, typer.Option(metavar="NAME", help="With one run file: the implementation to compare against (paired rounds).")] = None,
    head_impl: Annotated[str | None, typer.Option(metavar="NAME", help="With one run file: the implementation judged against --base-impl.")] = None,
    family: options.FamilyName = None,
    output_format: options.CompareFormat = "table",
    csv_path: options.CompareCsv = None,
    json_path: options.CompareJson = None,
) -> None:
    """Compare two timing results and fail on a real regression, not on noise.

    The evidence is each case's **rounds** (never the blocks inside one), by default each
    round's time over the floor op `x * c` timed in the same round (`--measure`), which cancels
    what slowed the whole machine between the two runs. A case is a **regression** only if it
    is slower by at least `--threshold` **and** a one-sided Mann-Whitney test on the rounds
    gives p < `--alpha` split over the cases **and** the interval of the ratio lies above 1;
    `~` when the interval lies within ±threshold; **inconclusive** otherwise, with about how many
    rounds would decide it. Two separate runs are weaker evidence than `dbench ab` (interleaved,
    paired): prefer it in CI. With one run file, `--base-impl A --head-impl B` judges two
    implementations by their paired rounds. Cases match by implementation, family, device,
    dtype, shape, the call's arguments (block size, p, holes) and mode (pytest-benchmark files:
    by test name, judged on raw samples); `--family NAME` compares that family's cases alone.

    A case that fails (an error row) in head but not in base counts as a regression; one that
    fails in both is listed as still failing.

    Exit codes: 0 no significant regression (inconclusive cases included), 1 at least one
    regression or newly failing case, 2 bad input.
    """
    from dropblock_bench.compare import compare_files, compare_implementations

    with _user_errors():
        options.check_format(output_format)
        family = options.check_family(family)
        if (base_impl is None) != (head_impl is None) or (base_impl is not None and head is not None):
            raise DbenchError("give two result files, or one `dbench run --json` file with both --base-impl and --head-impl")
        if head is None and base_impl is None:
            raise DbenchError("missing HEAD: give two result files, or one run file with --base-impl and --head-impl")
        inputs = {"base": base} if head is None or head.resolve() == base.resolve() else {"base": base, "head": head}
        check_distinct({**inputs, "--csv": csv_path, "--json": json_path})
        check_output_file(csv_path, "--csv")
        check_output_file(json_path, "--json")
        if head is not None:
            comparison = compare_files(base, head, threshold=threshold, alpha=alpha, measure=measure, family=family)
            names = (base.name, head.name)
        else:
            assert base_impl is not None and head_impl is not None
            comparison = compare_implementations(base, base_impl, head_impl, threshold=threshold, alpha=alpha, measure=measure,
                                                 family=family)  # fmt: skip
            names = (base_impl, head_impl)
    _write_and_show(comparison, names, output_format, csv_path, json_path, "dbench compare")


@_command("ab")
def ab_command(
    base_cmd: Annotated[str, typer.Option("--base", metavar="CMD", help="The base's dbench, e.g. ../venv-base/bin/dbench.")],
    head_cmd: Annotated[str, typer.Option("--head", metavar="CMD", help="The head's dbench, e.g. .venv/bin/dbench.")],
    impl: options.Impl = None,
    family: options.FamilyName = None,
    shape: options.Shape = None,
    preset: options.Preset = None,
    block_size: options.BlockSize = None,
    p: options.P = None,
    holes: options.Holes = None,
    dtype: options.Dtype = None,
    device: options.Device = None,
    mode: options.Mode = None,
    inplace: options.Inplace = False,
    threads: options.Threads = None,
    malloc: options.Malloc = "steady",
    exclude: options.Exclude = None,
    threshold: options.Threshold = 0.05,
    alpha: options.Alpha = 0.01,
    measure: options.Measure = "time",
    block_time: options.BlockTime = 0.05,
    rounds_per_pair: options.RoundsPerPair = 16,
    max_pairs: options.MaxPairs = 32,
    budget: options.Budget = 600.0,
    output_format: options.CompareFormat = "table",
    csv_path: options.CompareCsv = None,
    json_path: options.CompareJson = None,
) -> None:
    """Time two installations of dbench side by side, interleaved, and fail on a real regression.

    The CI primitive. Both sides time the same cases on the same input, alternately, round by
    round (base first, then head first: ABBA), in pairs of fresh `dbench worker` processes (an
    older dbench without one runs one short `dbench run` per round): two processes running
    identical code differ by up to 20 % for their whole life on a shared machine, so the
    replicate is a **pair** of workers, `--rounds-per-pair` rounds each, and its median ratio
    head/base. A **regression** needs the median over pairs >= 1 + `--threshold`, a one-sided
    Wilcoxon signed-rank p below `--alpha` split over the cases and looks, and the interval of
    the ratio above 1. The undecided cases are judged at 16 pairs and each time the pairs
    double; the pairs go on until every case is decided or `--max-pairs` or `--budget` runs
    out; a case still undecided is **inconclusive**, never `~`. With `--measure time` (the
    default) no floor op is timed, so rounds come twice as fast.

    Example: `dbench ab --base ../venv-base/bin/dbench --head .venv/bin/dbench --format markdown`

    Exit codes: 0 no regression (inconclusive cases included), 1 a regression or a case that
    raises on the head and not on the base, 2 bad usage or a side that cannot run (one that
    fails after some pairs: what was measured is judged and written first), 130 interrupted
    (likewise).
    """
    from dropblock_bench.compare import check_settings
    from dropblock_bench.run import ab
    from dropblock_bench.run.rounds import check_measure
    from dropblock_bench.run.session import RunRequest, plan

    with _user_errors():
        options.check_format(output_format)
        check_measure(measure)
        check_settings(threshold, alpha)
        check_distinct({"--csv": csv_path, "--json": json_path})
        check_output_file(csv_path, "--csv")
        check_output_file(json_path, "--json")
        commands = ab.parse_command(base_cmd), ab.parse_command(head_cmd)
        implementations, specs = _run_matrix(impl, family, shape=shape, preset=preset, block_size=block_size, p=p,
                                             holes=holes, dtype=dtype, device=device, mode=mode, inplace=inplace)  # fmt: skip
        cases = plan(RunRequest(implementations, specs, exclusions=exclude or (), malloc=malloc))
        settings = ab.ABSettings(threshold=threshold, alpha=alpha, measure=measure, block_time_s=block_time,
                                 rounds_per_pair=rounds_per_pair, max_pairs=max_pairs, budget_s=budget, threads=threads,
                                 malloc=malloc)  # fmt: skip
    run_args = ab.run_arguments({"--impl": impl, "--family": family, "--shape": shape, "--preset": preset,
                                 "--block-size": block_size, "--p": p, "--holes": holes,
                                 "--dtype": dtype, "--device": device, "--mode": mode, "--inplace": inplace,
                                 "--threads": threads, "--malloc": malloc, "--exclude": exclude})  # fmt: skip
    progress = _progress(with_eta=True)
    with progress, _user_errors():
        task = progress.add_task("starting both sides", total=settings.max_pairs)
        outcome = ab.run_ab_commands(cases, commands, run_args, settings,
                                     on_pair=lambda done, undecided: progress.update(task, completed=done, description=f"pair {done}: {undecided} undecided"))  # fmt: skip
    comparison = ab.ab_comparison(outcome)
    if not comparison.cases and not comparison.failing and not comparison.still_failing:
        with _user_errors():
            raise DbenchError(outcome.error or "no case ran on both sides: " + "; ".join(comparison.warnings or [outcome.stop_reason]))
    _write_and_show(comparison, (base_cmd, head_cmd), output_format, csv_path, json_path, "dbench ab",
                    exit_code=130 if outcome.interrupted else 2 if outcome.error else None)  # fmt: skip


@app.command("worker", hidden=True)
def worker_command() -> None:
    """Serve `dbench ab` rounds over stdin/stdout (JSON lines); not for people."""
    from dropblock_bench.run.worker import main as serve

    serve()


def _write_and_show(comparison: Comparison, names: tuple[str, str], output_format: str, csv_path: Path | None,
                    json_path: Path | None, tool: str, *, exit_code: int | None = None) -> None:  # fmt: skip
    """Write a comparison where asked, print it as a table or markdown, and exit 1 on a
    regression, or with ``exit_code`` where given (130 interrupted, 2 a side failed)."""
    from dropblock_bench.compare import markdown_report, write_comparison

    with _user_errors():
        write_comparison(comparison, csv_path=csv_path, json_path=json_path)
    if output_format == "markdown":
        typer.echo(markdown_report(comparison, *names, tool=tool), nl=False)
        raise typer.Exit(exit_code if exit_code is not None else 1 if comparison.failed else 0)
    screen = screens.compare_screen(comparison, *names, width=console.width, tool=tool)
    if exit_code is not None:
        screen.exit_code = exit_code
    _show(screen)


@_command("report")
def report_command(
    run_json: Annotated[Path, typer.Argument(help="A `dbench run --json` file.")],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FOLDER", help="Folder to write README.md and the PNG plots into, e.g. reports/NAME/.")],
    verify_json: Annotated[Path | None, typer.Option("--verify", metavar="FILE", help="A `dbench verify --json` file to include.")] = None,
    seed: Annotated[int, typer.Option(metavar="SEED", help="Seed of the example masks.")] = 0,
    family: options.FamilyName = None,
) -> None:
    """Write a markdown report with plots: for each family in the run, time and ×floor per
    implementation and shape, and example masks; for DropBlock2d, the drop rate each
    implementation delivers vs the requested p. `--family NAME` reports that family alone.

    Needs matplotlib: `pip install 'dropblock-bench[plots]'`.
    """
    from dropblock_bench.report import write_report

    with _user_errors():
        family = options.check_family(family)
        check_output_folder(output, "--output")
        path = write_report(run_json, output, verify_json, seed=seed, family=family)
    console.print(f"report written to {path}", highlight=False)


@_command("show")
def show_command(
    impl: Annotated[str, typer.Option("--impl", "-i", metavar="NAME", help="Implementation: a name or path/to/file.py:callable.")] = "fused",
    shape: Annotated[str | None, typer.Option("--shape", "-s", metavar="NxCxHxW", help="Input shape (the family's layout). Default per family, e.g. 1x3x14x14 for dropblock2d, 8x6x6 for drop-path.")] = None,
    block_size: Annotated[int | None, typer.Option("--block-size", "-k", metavar="K", help="Block size (Cutout: hole length). Default 5 (dropblock2d), 3 (dropblock3d), 6 (cutout).", min=1)] = None,
    p: Annotated[float | None, typer.Option("--p", metavar="P", help="Drop probability (not Cutout's). Default 0.2 (DropBlock), 0.5 (drop-path), 0.3 (spatial-dropout).", min=0.0, max=1.0)] = None,
    holes: Annotated[int | None, typer.Option("--holes", metavar="N", help="Cutout's holes per image. Default 2.", min=1)] = None,
    family: options.FamilyName = None,
    seed: Annotated[int, typer.Option(metavar="SEED", help="Seed of the draw.")] = 0,
    png: Annotated[Path | None, typer.Option("--png", metavar="FILE", help="Also save the mask as a PNG (needs matplotlib).")] = None,
) -> None:
    """Draw one sampled mask in the terminal (█ dropped, · kept), maps in rows that fit it.

    What is drawn shows the family's structure: DropBlock2d's and SpatialDropout's and Cutout's
    channels of the first sample, DropBlock3d's depth slices of its first two channels,
    DropPath's samples. A file callable is taken as `--family`'s signature (default dropblock2d).
    """
    from dropblock_bench import show

    with _user_errors():
        check_output_file(png, "--png")
        family = options.check_family(family)
        implementations = _resolve([impl], {}, family=family)
        if len(implementations) > 1:
            names = ", ".join(i.name for i in implementations)
            raise DbenchError(f"--impl {impl!r} names {len(implementations)} implementations ({names}); show draws one")
        [implementation] = implementations
        case = show.drawn_case(implementation, shape, p, block_size, holes)
    try:
        mask = show.sample(implementation, case, seed)
    except Exception as exc:  # noqa: BLE001 - the implementation's failure, reported in one line
        error_console.print(f"[bold red]error:[/] {implementation.name} raised {type(exc).__name__}: {exc}", highlight=False)
        raise typer.Exit(1) from None
    setting = case.setting_label
    shape = case.shape_label
    screen = screens.show_screen(implementation, mask, shape=shape, setting=setting, seed=seed, width=console.width)
    for line in screen.out:
        console.print(line, highlight=False)
    if png:
        from dropblock_bench import plots
        from dropblock_bench.render import family_maps

        with _user_errors():
            plots.save_figure(plots.panels_figure({implementation.name: family_maps(implementation.family, mask)}, screen.title), png)
        console.print(f"saved {png}", highlight=False)


def _show(screen: screens.Screen) -> None:
    """Print a command's :class:`~dropblock_bench.screens.Screen` and exit with its code."""
    for line in screen.out:
        console.print(line, highlight=False)
    for line in screen.err:
        error_console.print(line, highlight=False)
    if screen.exit_code:
        raise typer.Exit(screen.exit_code)


def _progress(with_eta: bool = False) -> Progress:
    return progress_bar(error_console, with_eta=with_eta)


def _run_matrix(impl: list[str] | None, family: str | None,
                **matrix_options: Any) -> tuple[dict[str, Implementation], tuple[MatrixSpec, ...]]:  # fmt: skip
    """The implementations ``run`` and ``ab`` time (those named, else the built-ins of
    ``family``, else of every family) and one matrix per family (:func:`matrix_specs`)."""
    from dropblock_bench.run.session import matrix_specs

    family = options.check_family(family)
    resolved = _resolve(impl, {}, builtins_only=True, family=family)
    from dropblock_bench.families.catalog import FAMILIES

    by_family: dict[str, list[str]] = {name: [] for name in FAMILIES}
    for implementation in resolved:
        by_family[implementation.family].append(implementation.name)
    by_family = {name: names for name, names in by_family.items() if names}
    specs = matrix_specs(by_family, chosen=bool(impl or family), **matrix_options)
    return {i.name: i for i in resolved}, specs


def _resolve(specs: list[str] | None, overrides: dict[str, str | None], *, builtins_only: bool = False,
             family: str | None = "dropblock2d") -> list[Implementation]:  # fmt: skip
    """Implementations named on the command line, or every registered one of ``family`` (every
    family when None; the built-ins only, with ``builtins_only``); plugin errors are printed as
    warnings. A named implementation of another family is a usage error naming its family."""
    from dropblock_bench.registry import default_registry, resolve_implementations

    registry = default_registry()
    if specs:
        implementations = resolve_implementations(specs, overrides, family)
        strangers = [i for i in implementations if family is not None and i.family != family]
        if strangers:
            names = "; ".join(f"{i.name} is a {i.family} one" for i in strangers)
            raise DbenchError(f"--family {family} takes {family} implementations; {names} (leave out --family, or name its own)")
    else:
        implementations = [i for i in registry.implementations(family=family) if not builtins_only or i.origin == "dropblock-bench"]
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
