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


Shape = tuple[int, ...]
"""An input's sizes, e.g. (N, C, H, W) for DropBlock2d, (N, L, D) for DropPath on tokens."""

DEFAULT_FAMILY = "dropblock2d"


@dataclasses.dataclass(frozen=True)
class RunCase:
    """One timed measurement: an implementation of ``family`` on one input, in one mode.

    The call's arguments after ``x`` come from the case by the family's signature
    (:meth:`arguments`): ``p`` and ``block_size`` for DropBlock2d and DropBlock3d, ``p`` for
    DropPath and SpatialDropout (``block_size`` is then 0), ``holes`` and ``block_size`` (the
    hole's length) for Cutout (``p`` is then 0; ``holes`` is 0 for every other family).
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
    family: str = DEFAULT_FAMILY
    holes: int = 0

    @property
    def shape_label(self) -> str:
        return "x".join(map(str, self.shape))

    @property
    def arguments(self) -> dict[str, float | int]:
        """The call's arguments after ``x``, by name, in the family's order."""
        from dropblock_bench.families.catalog import family_named

        values = {"p": self.p, "block_size": self.block_size, "length": self.block_size, "n_holes": self.holes}
        return {name: values[name] for name in family_named(self.family).arguments}

    @property
    def setting_label(self) -> str:
        """The family's arguments for people: ``k=7 p=0.1``, ``p=0.1``, ``holes=1 L=16``."""
        short = {"n_holes": "holes", "block_size": "k", "length": "L", "p": "p"}  # in this order
        arguments = self.arguments
        return " ".join(f"{label}={arguments[name]:g}" for name, label in short.items() if name in arguments)

    @property
    def key(self) -> tuple[object, ...]:
        """What identifies a case across runs: the values of :data:`~dropblock_bench.run.records.KEY_COLUMNS`,
        in that order (a record's flat form gives the same tuple through ``records.case_key``)."""
        return (self.implementation, self.device, self.dtype, self.shape_label, self.block_size, self.p, self.mode,
                self.inplace, self.family, self.holes)  # fmt: skip

    @property
    def group(self) -> tuple[object, ...]:
        """The key without the implementation: cases that compete with each other."""
        return self.key[1:]

    @property
    def turn_group(self) -> tuple[object, ...]:
        """The key without implementation and dtype: cases timed together, in turns, so that
        implementations compare and dtypes compare (each against its own floor) within minutes
        that saw the same machine."""
        return (self.device, self.shape_label, self.block_size, self.p, self.mode, self.inplace, self.family, self.holes)


@dataclasses.dataclass(frozen=True)
class MatrixSpec:
    """Every axis of one family's matrix; :func:`expand` takes their product."""

    implementations: tuple[str, ...]
    shapes: tuple[Shape, ...]
    block_sizes: tuple[int, ...] = (7,)
    ps: tuple[float, ...] = (0.1,)
    dtypes: tuple[str, ...] = ("float32",)
    devices: tuple[str, ...] = ("cpu",)
    modes: tuple[str, ...] = ("forward",)
    inplace: tuple[bool, ...] = (False,)
    family: str = DEFAULT_FAMILY
    holes: tuple[int, ...] = (0,)


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named matrix of one family: the shapes it is used at, and the modes and block size
    (Cutout: hole length) timed there unless the options say otherwise."""

    shapes: tuple[Shape, ...]
    modes: tuple[str, ...] = ("forward",)
    block_size: int = 0
    """0 where the family takes no block."""


_RESNET50 = ((32, 256, 56, 56), (32, 512, 28, 28), (32, 1024, 14, 14), (32, 2048, 7, 7))
_QUICK_2D = ((8, 256, 56, 56), (8, 1024, 14, 14))
PRESETS: dict[str, dict[str, Preset]] = {
    "dropblock2d": {
        # A newcomer's first run: an early and a late ResNet-50 stage at batch 8, forward and
        # forward+backward; tensors large enough to leave the caches, done in well under a minute.
        "quick": Preset(_QUICK_2D, MODES, 7),
        # The four ResNet-50 stage outputs at batch 32, block 7 (the paper's setting).
        "resnet50": Preset(_RESNET50, block_size=7),
    },
    "dropblock3d": {
        "quick": Preset(((2, 256, 8, 28, 28), (2, 1024, 8, 7, 7)), MODES, 3),
        # The stage outputs of a 3-D ResNet-50 (I3D / SlowOnly) on 8 frames of 224 x 224, batch 8.
        "video": Preset(((8, 256, 8, 56, 56), (8, 512, 8, 28, 28), (8, 1024, 8, 14, 14), (8, 2048, 8, 7, 7)), block_size=3),
    },
    "drop-path": {
        "quick": Preset(((8, 197, 768), (8, 96, 56, 56)), MODES),
        # ViT-B/16's residual branches at 224 x 224 (197 tokens of 768), batch 64.
        "vit": Preset(((64, 197, 768),)),
        # ConvNeXt-T's four stages' residual branches, batch 32.
        "convnext": Preset(((32, 96, 56, 56), (32, 192, 28, 28), (32, 384, 14, 14), (32, 768, 7, 7))),
    },
    "spatial-dropout": {
        "quick": Preset(_QUICK_2D, MODES),
        "resnet50": Preset(_RESNET50),
    },
    "cutout": {
        "quick": Preset(((128, 3, 32, 32), (16, 3, 224, 224)), block_size=16),
        # CIFAR-10 batches, one hole of 16 (the Cutout paper's CIFAR-10 setting).
        "cifar": Preset(((128, 3, 32, 32),), block_size=16),
        # ImageNet batches, one hole of 112: half the side, the CIFAR-10 setting's proportion.
        "imagenet": Preset(((64, 3, 224, 224),), block_size=112),
    },
}
"""Each family's presets by name; every family has ``quick``, the default."""

DEFAULT_BLOCK_SIZES = {"dropblock2d": 7, "dropblock3d": 3, "cutout": 16}
"""The block size (Cutout: hole length) a family is timed at when neither ``--block-size``
nor a preset gives one."""


def check_shape(shape: Shape, family: str) -> None:
    """Raise :class:`MatrixError` unless ``family`` takes inputs of ``shape``'s rank."""
    from dropblock_bench.families.catalog import family_named

    record = family_named(family)
    if len(shape) not in record.ranks:
        label = "x".join(map(str, shape))
        raise MatrixError(f"{family} takes {record.shape_hint} shapes ({' or '.join(f'{r}-D' for r in record.ranks)}), not {label}")


_POSITIVE_INT = re.compile(r"0*[1-9][0-9]*")  # ASCII digits only: str.isdigit() also takes '²', which int() rejects


def split_values(values: Iterable[str] | None) -> list[str]:
    """Repeated flags and comma lists alike: ``["a,b", "c"]`` -> ``["a", "b", "c"]``."""
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


MAX_RANK = 6


def parse_shape(text: str) -> Shape:
    """``"32x256x56x56"`` (or with ``X``/``*``) -> (32, 256, 56, 56): 1 to 6 sizes, each
    positive (which ranks a family takes is :func:`check_shape`'s business)."""
    parts = re.split(r"[xX*×]", text.strip())
    if not 1 <= len(parts) <= MAX_RANK or not all(_POSITIVE_INT.fullmatch(part) for part in parts):
        raise MatrixError(f"bad shape {text!r}: write sizes joined by x, positive integers, e.g. 32x256x56x56 (NxCxHxW)")
    return tuple(int(part) for part in parts)


def parse_holes(text: str) -> int:
    if not _POSITIVE_INT.fullmatch(text.strip()):
        raise MatrixError(f"bad number of holes {text!r}: write a positive integer")
    return int(text)


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
    "family": (lambda c: c.family, lambda v: [v.strip()]),
    "holes": (lambda c: str(c.holes), lambda v: [str(parse_holes(v))]),
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
    inplace, family, holes)."""
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
        RunCase(impl, device, dtype, shape, block, p, mode, inplace, spec.family, holes)
        for shape, block, p, holes, device, mode, inplace, dtype, impl in itertools.product(
            spec.shapes, spec.block_sizes, spec.ps, spec.holes, spec.devices, spec.modes, spec.inplace, spec.dtypes,
            spec.implementations,
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
