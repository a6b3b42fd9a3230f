"""The benchmark matrix of ``dbench run``: parsing user input, presets, expansion, sharding.

Pure and torch-free, so bad input is refused before anything heavy loads.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import math
import re
from collections.abc import Callable, Iterable, Sequence

from dropblock_bench.errors import DbenchError
from dropblock_bench.registry import DTYPE_NAMES

MODES = ("forward", "backward")
_DEVICE_PATTERN = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


class MatrixError(DbenchError, ValueError):
    """A shape, dtype, device, probability, block size or shard the user wrote is not valid."""


Shape = tuple[int, int, int, int]


@dataclasses.dataclass(frozen=True)
class RunCase:
    """One timed measurement: an implementation on one input, in one mode.

    ``mode="backward"`` times forward and backward together (the backward pass alone has no
    graph to run on); ``inplace=True`` passes ``inplace=True`` and is timed against ``x.mul_(c)``.
    """

    implementation: str
    device: str
    dtype: str
    shape: Shape
    block_size: int
    p: float
    mode: str
    inplace: bool = False

    @property
    def shape_label(self) -> str:
        return "x".join(map(str, self.shape))

    @property
    def key(self) -> tuple[object, ...]:
        """What identifies a case across runs: the values of :data:`~dropblock_bench.run.records.KEY_COLUMNS`,
        in that order (a record's flat form gives the same tuple through ``records.case_key``)."""
        return (self.implementation, self.device, self.dtype, self.shape_label, self.block_size, self.p, self.mode, self.inplace)

    @property
    def group(self) -> tuple[object, ...]:
        """The key without the implementation: cases that compete with each other."""
        return self.key[1:]

    @property
    def turn_group(self) -> tuple[object, ...]:
        """The key without implementation and dtype: cases timed together, in turns, so that
        implementations compare and dtypes compare (each against its own floor) within minutes
        that saw the same machine."""
        return (self.device, self.shape_label, self.block_size, self.p, self.mode, self.inplace)


@dataclasses.dataclass(frozen=True)
class MatrixSpec:
    """Every axis of the matrix; :func:`expand` takes their product."""

    implementations: tuple[str, ...]
    shapes: tuple[Shape, ...]
    block_sizes: tuple[int, ...] = (7,)
    ps: tuple[float, ...] = (0.1,)
    dtypes: tuple[str, ...] = ("float32",)
    devices: tuple[str, ...] = ("cpu",)
    modes: tuple[str, ...] = ("forward",)
    inplace: tuple[bool, ...] = (False,)


PRESETS: dict[str, dict[str, tuple]] = {
    # A newcomer's first run: an early and a late ResNet-50 stage at batch 8, forward and
    # forward+backward; tensors large enough to leave the caches, done in well under a minute.
    "quick": {"shapes": ((8, 256, 56, 56), (8, 1024, 14, 14)), "modes": MODES},
    # The four ResNet-50 stage outputs at batch 32, block 7 (the paper's setting).
    "resnet50": {"shapes": ((32, 256, 56, 56), (32, 512, 28, 28), (32, 1024, 14, 14), (32, 2048, 7, 7))},
}


_POSITIVE_INT = re.compile(r"0*[1-9][0-9]*")  # ASCII digits only: str.isdigit() also takes '²', which int() rejects


def split_values(values: Iterable[str] | None) -> list[str]:
    """Repeated flags and comma lists alike: ``["a,b", "c"]`` -> ``["a", "b", "c"]``."""
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


def parse_shape(text: str) -> Shape:
    """``"32x256x56x56"`` (or with ``X``/``*``) -> (32, 256, 56, 56), every size positive."""
    parts = re.split(r"[xX*×]", text.strip())
    if len(parts) != 4 or not all(_POSITIVE_INT.fullmatch(part) for part in parts):
        raise MatrixError(f"bad shape {text!r}: write NxCxHxW with positive integers, e.g. 32x256x56x56")
    n, c, h, w = (int(part) for part in parts)
    return n, c, h, w


def parse_dtype(text: str) -> str:
    aliases = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16", "fp64": "float64", "double": "float64"}
    name = aliases.get(text.strip().lower(), text.strip().lower())
    if name not in DTYPE_NAMES:
        raise MatrixError(f"unknown dtype {text!r}: use one of {', '.join(DTYPE_NAMES)}")
    return name


def parse_device(text: str) -> str:
    name = text.strip().lower()
    if not _DEVICE_PATTERN.match(name):
        raise MatrixError(f"unknown device {text!r}: use cpu, cuda, cuda:N or mps")
    return name


def parse_probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise MatrixError(f"bad drop probability {text!r}: write a number in [0, 1]") from None
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise MatrixError(f"drop probability {text!r} is outside [0, 1]")
    return value


def parse_block_size(text: str) -> int:
    if not _POSITIVE_INT.fullmatch(text.strip()):
        raise MatrixError(f"bad block size {text!r}: write a positive integer")
    return int(text)


MODE_SPELLINGS = {
    "forward": "forward",
    "fwd": "forward",
    "backward": "backward",
    "bwd": "backward",
    "fwd+bwd": "backward",
    "forward+backward": "backward",
    "fwd-bwd": "backward",
}
"""Every spelling of a mode that the tables and reports print, and the mode it means
(``backward`` times forward and backward together)."""


def parse_mode(text: str) -> tuple[str, ...]:
    """``forward``, ``backward`` (forward+backward) or ``both``, in any spelling the tables print."""
    name = text.strip().lower().replace(" ", "")
    if name == "both":
        return MODES
    if name not in MODE_SPELLINGS:
        raise MatrixError(f"unknown mode {text!r}: use forward (fwd), backward (fwd+bwd) or both")
    return (MODE_SPELLINGS[name],)


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> (2, 4): the second of four slices (1-based)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise MatrixError(f"bad shard {text!r}: write I/N with 1 <= I <= N, e.g. 2/4")
    return int(match.group(1)), int(match.group(2))


def _parse_inplace(text: str) -> str:
    value = text.strip().lower()
    if value not in {"true", "false", "yes", "no", "1", "0"}:
        raise MatrixError(f"bad inplace value {text!r}: write true or false")
    return str(value in {"true", "yes", "1"})


# Field name in --exclude -> (the case's value as text, how a written value is normalised).
_EXCLUDE_FIELDS: dict[str, tuple[Callable[[RunCase], str], Callable[[str], Iterable[str]]]] = {
    "impl": (lambda c: c.implementation, lambda v: [v.strip()]),
    "dtype": (lambda c: c.dtype, lambda v: [parse_dtype(v)]),
    "shape": (lambda c: c.shape_label, lambda v: ["x".join(map(str, parse_shape(v)))]),
    "mode": (lambda c: c.mode, parse_mode),
    "device": (lambda c: c.device, lambda v: [parse_device(v)]),
    "block": (lambda c: str(c.block_size), lambda v: [str(parse_block_size(v))]),
    "p": (lambda c: repr(c.p), lambda v: [repr(parse_probability(v))]),
    "inplace": (lambda c: str(c.inplace), lambda v: [_parse_inplace(v)]),
}


@dataclasses.dataclass(frozen=True)
class Exclusion:
    """Cases to leave out of a run: those matching every condition, a condition being a field
    and the values it may take (implementation names may be globs)."""

    conditions: tuple[tuple[str, tuple[str, ...]], ...]

    def matches(self, case: RunCase) -> bool:
        return all(
            any(fnmatch.fnmatchcase(_EXCLUDE_FIELDS[field][0](case), value) for value in values)
            for field, values in self.conditions
        )


def parse_exclusion(text: str) -> Exclusion:
    """``"impl=torchvision,timm* dtype=float16,bfloat16"`` -> an :class:`Exclusion` (space-separated
    ``FIELD=VALUES``, every one must match; fields: impl, dtype, shape, mode, device, block, p,
    inplace)."""
    conditions = []
    for part in text.split():
        field, sep, values = part.partition("=")
        field = field.strip().lower()
        if not sep or field not in _EXCLUDE_FIELDS or not values.strip(","):
            raise MatrixError(
                f"bad exclusion {part!r} in {text!r}: write FIELD=VALUES with FIELD one of "
                f"{', '.join(_EXCLUDE_FIELDS)}, e.g. 'impl=torchvision,timm* dtype=float16'"
            )
        normalise = _EXCLUDE_FIELDS[field][1]
        conditions.append((field, tuple(v for value in split_values([values]) for v in normalise(value))))
    if not conditions:
        raise MatrixError("empty exclusion: write FIELD=VALUES, e.g. 'impl=torchvision dtype=float16'")
    return Exclusion(tuple(conditions))


def expand(spec: MatrixSpec) -> list[RunCase]:
    """Every combination, ordered so that implementations of one setting sit side by side and
    the dtypes of one shape, block, p, device and mode follow each other (one turn group)."""
    return [
        RunCase(impl, device, dtype, shape, block, p, mode, inplace)
        for shape, block, p, device, mode, inplace, dtype, impl in itertools.product(
            spec.shapes, spec.block_sizes, spec.ps, spec.devices, spec.modes, spec.inplace, spec.dtypes, spec.implementations
        )
    ]


def shard(cases: Sequence[RunCase], index: int, count: int) -> list[RunCase]:
    """The ``index``-th of ``count`` deterministic slices (1-based); the slices partition ``cases``.

    Whole turn groups (all implementations and dtypes of one setting) stay in one slice, so
    ratios between implementations, or between dtypes, are always measured in the same process.
    """
    groups: dict[tuple[object, ...], list[RunCase]] = {}
    for case in cases:
        groups.setdefault(case.turn_group, []).append(case)
    return [case for position, group in enumerate(groups.values()) if position % count == index - 1 for case in group]
