"""The benchmark matrix of ``dbench run``: parsing user input, presets, expansion, sharding.

Pure and torch-free, so bad input is refused before anything heavy loads.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Iterable, Sequence

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
        """What identifies a case across runs (used by merge and compare)."""
        return (self.implementation, self.device, self.dtype, self.shape_label, self.block_size, self.p, self.mode, self.inplace)

    @property
    def group(self) -> tuple[object, ...]:
        """The key without the implementation: cases that compete with each other."""
        return self.key[1:]


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


def split_values(values: Iterable[str] | None) -> list[str]:
    """Repeated flags and comma lists alike: ``["a,b", "c"]`` -> ``["a", "b", "c"]``."""
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


def parse_shape(text: str) -> Shape:
    """``"32x256x56x56"`` (or with ``X``/``*``) -> (32, 256, 56, 56), every size positive."""
    parts = re.split(r"[xX*×]", text.strip())
    if len(parts) != 4 or not all(part.isdigit() and int(part) > 0 for part in parts):
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
    if not text.strip().isdigit() or int(text) <= 0:
        raise MatrixError(f"bad block size {text!r}: write a positive integer")
    return int(text)


def parse_mode(text: str) -> tuple[str, ...]:
    name = text.strip().lower()
    if name == "both":
        return MODES
    if name not in MODES:
        raise MatrixError(f"unknown mode {text!r}: use forward, backward or both")
    return (name,)


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> (2, 4): the second of four slices (1-based)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise MatrixError(f"bad shard {text!r}: write I/N with 1 <= I <= N, e.g. 2/4")
    return int(match.group(1)), int(match.group(2))


def expand(spec: MatrixSpec) -> list[RunCase]:
    """Every combination, grouped so that implementations of one setting sit side by side."""
    return [
        RunCase(impl, device, dtype, shape, block, p, mode, inplace)
        for shape, block, p, dtype, device, mode, inplace, impl in itertools.product(
            spec.shapes, spec.block_sizes, spec.ps, spec.dtypes, spec.devices, spec.modes, spec.inplace, spec.implementations
        )
    ]


def shard(cases: Sequence[RunCase], index: int, count: int) -> list[RunCase]:
    """The ``index``-th of ``count`` deterministic slices (1-based); the slices partition ``cases``.

    Whole groups (all implementations of one setting) stay in one slice, so ratios between
    implementations are always measured in the same process.
    """
    groups: dict[tuple[object, ...], list[RunCase]] = {}
    for case in cases:
        groups.setdefault(case.group, []).append(case)
    return [case for position, group in enumerate(groups.values()) if position % count == index - 1 for case in group]
