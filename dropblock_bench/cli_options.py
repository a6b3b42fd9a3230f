"""The long option declarations of ``dbench run`` and ``dbench verify``, here so each command
reads as what it does. Each is an ``Annotated`` type for one parameter in :mod:`dropblock_bench.cli`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dropblock_bench.errors import DbenchError

# --------------------------------------------------------------------------- shared

Impl = Annotated[
    list[str] | None,
    typer.Option(
        "--impl",
        "-i",
        metavar="NAME",
        help="Implementation: a name, a glob ('fused*'), a comma list, or path/to/file.py:callable. Repeatable. Default: all registered.",
    ),
]
def check_family(value: str | None) -> str | None:
    """``--family``'s value, or :class:`DbenchError` (one line, exit 2) naming the families."""
    from dropblock_bench.families.catalog import family_named

    if value is None:
        return None
    try:
        return family_named(value).name
    except ValueError as error:
        raise DbenchError(f"--family: {error}") from None


FamilyName = Annotated[
    str | None,
    typer.Option(
        "--family",
        metavar="NAME",
        help="Only this family: dropblock2d, dropblock3d, drop-path, spatial-dropout or cutout. Default: every family.",
    ),
]
Backends = Annotated[
    bool,
    typer.Option("--backends", metavar="", help="Also say which code path each implementation takes here, and why (imports torch; may build a kernel)."),
]
ShowAll = Annotated[
    bool, typer.Option("--all", metavar="", help="Also list the public implementations that are not installed, and how to install them.")
]

# --------------------------------------------------------------------------- dbench run

Shape = Annotated[
    list[str] | None,
    typer.Option(
        "--shape", "-s", metavar="NxCxHxW",
        help="Input shape, e.g. 32x256x56x56 (NxCxDxHxW for dropblock3d, 64x197x768 for drop-path). Repeatable or comma list.",
    ),
]
Preset = Annotated[
    str | None,
    typer.Option(
        metavar="NAME",
        help="Each family's shapes: quick (the default, every family); resnet50 (dropblock2d, spatial-dropout: the 4 ResNet-50 stages at batch 32); video (dropblock3d); vit, convnext (drop-path); cifar, imagenet (cutout). See docs/cli.md.",
    ),
]
BlockSize = Annotated[
    list[str] | None,
    typer.Option("--block-size", "-k", metavar="K", help="Block size(s); Cutout's hole length. Default: the preset's (7 for dropblock2d)."),
]
Holes = Annotated[list[str] | None, typer.Option("--holes", metavar="N", help="Cutout's holes per image. Default 1.")]
P = Annotated[list[str] | None, typer.Option("--p", metavar="P", help="Drop probability(ies) in [0, 1] (not Cutout's). Default 0.1.")]
Dtype = Annotated[
    list[str] | None, typer.Option(metavar="DTYPE", help="float32 | float16 | bfloat16 | float64. Default float32.")
]
Device = Annotated[
    list[str] | None,
    typer.Option(metavar="DEVICE", help="cpu | cuda | cuda:N | mps. Absent devices are skipped. Default cpu."),
]
Mode = Annotated[
    str | None,
    typer.Option(
        metavar="forward|backward|both",
        help="backward (also fwd+bwd) means forward+backward; forward also fwd; both times each. Default: both for the quick preset, forward otherwise.",
    ),
]
Inplace = Annotated[bool, typer.Option("--inplace", metavar="", help="Also time inplace=True (against x.mul_(c)).")]
Threads = Annotated[int | None, typer.Option(metavar="N", help="torch CPU threads (torch.set_num_threads).", min=1)]
MinTime = Annotated[
    float,
    typer.Option(
        "--min-time",
        metavar="SECONDS",
        help="Seconds of timing per case (and as much for its floor). Longer gives tighter intervals.",
        min=0.01,
    ),
]
Rounds = Annotated[
    int,
    typer.Option(
        metavar="N",
        help="Rounds the --min-time of each case is split over; in each, every case of a shape and mode runs one block in "
        "turn. More rounds average the machine's slow drifts better (each block still runs at least one call); "
        "--json keeps each round's sample count, so rounds can be compared as pairs.",
        min=1,
    ),
]
Memory = Annotated[
    bool, typer.Option("--memory/--no-memory", metavar="", help="Measure peak memory and bytes saved for backward.")
]
Csv = Annotated[Path | None, typer.Option("--csv", metavar="FILE", help="Write one row per case, as each finishes.")]
Json = Annotated[
    Path | None, typer.Option("--json", metavar="FILE", help="Write meta, cases and raw samples, as each finishes.")
]
Shard = Annotated[
    str | None,
    typer.Option(
        "--shard", metavar="I/N", help="Run slice I of N of the matrix, e.g. 2/4; combine with `dbench merge`."
    ),
]
Malloc = Annotated[
    str,
    typer.Option(
        metavar="steady|system",
        help="steady: every allocation reuses memory already faulted in (glibc: no fresh mappings, heap kept), so no "
        "call pays page faults and times measure the implementations, whatever ran before. system: the allocator as "
        "your program has it, page faults on fresh outputs included (they vary with what ran before).",
    ),
]
Exclude = Annotated[
    list[str] | None,
    typer.Option(
        metavar="FIELD=VALUES",
        help="Leave out the cases matching every FIELD=VALUES given (space-separated; fields impl, dtype, shape, mode, "
        "device, block, p, inplace; impl takes globs). Repeatable. E.g. --exclude 'impl=torchvision,timm* dtype=float16,bfloat16'.",
    ),
]


# --------------------------------------------------------------------------- dbench verify


def _contract(field: str, choices: str, default: str, what: str) -> typer.models.OptionInfo:
    return typer.Option(f"--{field}", help=f"For file.py:callable: {what}: {choices} (default {default}).", metavar=field.upper())


VerifySeed = Annotated[int, typer.Option(metavar="SEED", help="Seed of every random draw; a fixed seed makes the run reproducible.")]
Quick = Annotated[bool, typer.Option("--quick", metavar="", help="Fewer cases and smaller samples: seconds instead of tens of seconds, less power.")]
Strict = Annotated[bool, typer.Option("--strict", metavar="", help="Also exit 1 on warnings (conventions such as p=1 not giving all zeros).")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", metavar="", help="Show every check in a table, not only the ones that did not pass.")]
VerifyJson = Annotated[Path | None, typer.Option("--json", metavar="FILE", help="Write every check as JSON to this file (rewritten as each implementation finishes).")]
VerifyCsv = Annotated[Path | None, typer.Option("--csv", metavar="FILE", help="Write one CSV row per check to this file (rewritten as each implementation finishes).")]
Mask = Annotated[str | None, _contract("mask", "per-channel | shared", "per-channel", "one mask per channel or one per sample")]
Seeds = Annotated[str | None, _contract("seeds", "valid | anywhere", "valid", "where block seeds fall")]
Gamma = Annotated[str | None, _contract("gamma", "paper | naive", "paper", "seed probability rule")]
Norm = Annotated[str | None, _contract("norm", "batch | sample | expected | none", "batch", "rescaling of kept units")]
Anchor = Annotated[str | None, _contract("anchor", "centre | up-left | down-right", "centre", "where a block lies around its seed")]
Clamp = Annotated[str | None, _contract("clamp", "min | per-axis", "min", "how a block larger than the map is cut")]
Batch = Annotated[str | None, _contract("batch", "per-sample | shared", "per-sample", "one mask per sample or one per batch")]
ContractFields = Annotated[
    list[str] | None,
    typer.Option(
        "--contract",
        metavar="FIELD=VALUE",
        help="Contract field of a file.py:callable of any family, e.g. unit=batch or scale=eval-time (drop-path),"
        " unit=sample (spatial-dropout), centre=fits, holes=per-channel or rescale=kept-fraction (cutout)."
        " Repeatable or comma list.",
    ),
]


def parse_contract_fields(values: list[str] | None) -> dict[str, str]:
    """``["unit=batch", "scale=eval-time,..."]`` -> ``{"unit": "batch", ...}``, or a one-line
    :class:`DbenchError` saying what a malformed item should look like."""
    fields: dict[str, str] = {}
    for item in (part.strip() for value in values or [] for part in value.split(",") if part.strip()):
        name, sep, choice = item.partition("=")
        if not sep or not name.strip() or not choice.strip():
            raise DbenchError(f"--contract {item!r}: use FIELD=VALUE, e.g. --contract unit=batch")
        fields[name.strip()] = choice.strip()
    return fields


# --------------------------------------------------------------------------- compare and ab

Threshold = Annotated[float, typer.Option(metavar="FRACTION", help="Smallest slowdown that counts, as a fraction (0.05 = 5 %).")]
Alpha = Annotated[
    float,
    typer.Option(
        metavar="LEVEL",
        help="Significance level, split evenly over the cases (and ab's looks); for dbench ab, the chance that identical "
        "code fails at all (two separate runs cannot promise that: see docs/ci.md).",
    ),
]
Measure = Annotated[
    str,
    typer.Option(
        metavar="ratio-to-floor|time",
        help="What each round contributes: its median time, or that over the floor op x*c timed in the same round "
        "(cancels what slowed the whole machine).",
    ),
]
CompareFormat = Annotated[
    str,
    typer.Option("--format", metavar="table|markdown", help="table (rich, on screen) or markdown (for a PR comment or $GITHUB_STEP_SUMMARY)."),
]
CompareCsv = Annotated[Path | None, typer.Option("--csv", metavar="FILE", help="Write one row per matched case.")]
CompareJson = Annotated[Path | None, typer.Option("--json", metavar="FILE", help="Write the whole comparison as JSON.")]
BlockTime = Annotated[
    float, typer.Option(metavar="SECONDS", help="Time of one block of a case (and one of its floor) in each round, per side.", min=0.001)
]
MaxPairs = Annotated[int, typer.Option(metavar="N", help="Stop after this many pairs of workers even if cases are undecided.", min=2)]
RoundsPerPair = Annotated[int, typer.Option(metavar="N", help="Interleaved rounds each pair of fresh workers times.", min=1)]
Budget = Annotated[
    float,
    typer.Option(
        metavar="SECONDS",
        help="Stop at the last look that fits in this time (the first look always runs); undecided cases are inconclusive.",
        min=1.0,
    ),
]


def check_format(output_format: str) -> None:
    """``table`` or ``markdown``; anything else is a one-line error."""
    if output_format not in ("table", "markdown"):
        raise DbenchError(f"unknown --format {output_format!r}: use table or markdown")
