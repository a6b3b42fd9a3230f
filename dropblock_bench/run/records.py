"""The results format of ``dbench run``: one typed record per case, and its flat file form.

A :class:`CaseRecord` is a case (:class:`~dropblock_bench.run.matrix.RunCase`), its status,
and, only where it ran, its :class:`Timing` and :class:`MemoryUse`. Files hold the flat form
(:meth:`CaseRecord.to_dict`): the key columns, the timing columns (``noise``: the case's noise
flags joined by ``;``) and memory columns, status and reason (:data:`CSV_COLUMNS`), plus the
raw samples in JSON (:data:`JSON_COLUMNS`). Everything that reads results files (compare,
report, merge, ``reports/targets.py``) identifies a case with :func:`case_key` or
:func:`case_label` from here, never by rebuilding it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from dropblock_bench.run.matrix import DEFAULT_FAMILY, RunCase, parse_shape

__all__ = [
    "CSV_COLUMNS",
    "JSON_COLUMNS",
    "KEY_COLUMNS",
    "NOISE_SEPARATOR",
    "CaseRecord",
    "CaseStatus",
    "MemoryUse",
    "Timing",
    "case_family",
    "case_key",
    "case_label",
    "setting_label",
]

KEY_COLUMNS = ("implementation", "device", "dtype", "shape", "block_size", "p", "mode", "inplace", "family", "holes")
_KEY_DEFAULTS = {"family": DEFAULT_FAMILY, "holes": 0}
"""What a file written before the families read as: DropBlock2d cases, no holes."""


class CaseStatus(enum.StrEnum):
    OK = "ok"
    SKIPPED = "skipped"
    """Could not run here (device absent, dtype unsupported, block larger than the map); see ``reason``."""
    ERROR = "error"
    """Raised; ``reason`` holds the exception."""


@dataclasses.dataclass
class Timing:
    """What timing a case measured. Times in ms; bandwidth in GB/s (1e9 bytes).

    ``samples_ms`` holds every block's mean time, round after round; ``samples_per_round``
    how many each round gave (so rounds can serve as paired replicates); the same for the
    floor op (``x * c``) timed alongside. ``noise`` holds the case's noise flags
    (:func:`~dropblock_bench.run.noise.noise_flags`, set by the run session); empty when none
    was raised, or in a file written before the flags existed.
    """

    median_ms: float
    iqr_ms: float
    ci_low_ms: float
    ci_high_ms: float
    n_samples: int
    floor_median_ms: float
    floor_ratio: float | None
    """``median_ms / floor_median_ms``; None when the floor took no measurable time."""
    gbps: float | None
    """Bytes that must move (x in, out out; twice that for backward) per second; None at 0 ms."""
    samples_ms: list[float] = dataclasses.field(default_factory=list)
    floor_samples_ms: list[float] = dataclasses.field(default_factory=list)
    samples_per_round: list[int] = dataclasses.field(default_factory=list)
    floor_samples_per_round: list[int] = dataclasses.field(default_factory=list)
    noise: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class MemoryUse:
    """Memory a case used, in bytes: peak above its input (None where not measurable here),
    and bytes saved for backward (backward cases only)."""

    peak_mem_bytes: int | None = None
    saved_bytes: int | None = None


_SAMPLE_FIELDS = ("samples_ms", "floor_samples_ms", "samples_per_round", "floor_samples_per_round")
NOISE_SEPARATOR = ";"
"""Joins a case's noise flags in its one ``noise`` column (CSV and JSON alike): ``spread;floor-drift``."""
_TIMING_COLUMNS = tuple(f.name for f in dataclasses.fields(Timing) if f.name not in _SAMPLE_FIELDS)
_MEMORY_COLUMNS = tuple(f.name for f in dataclasses.fields(MemoryUse))
CSV_COLUMNS = (*KEY_COLUMNS, *_TIMING_COLUMNS, *_MEMORY_COLUMNS, "status", "reason")
"""The flat columns of a case, in file order (CSV, and the first fields of a JSON case)."""
JSON_COLUMNS = (*CSV_COLUMNS, *_SAMPLE_FIELDS)


@dataclasses.dataclass
class CaseRecord:
    """One case of a run: what was asked, what happened, what was measured."""

    case: RunCase
    status: CaseStatus = CaseStatus.OK
    reason: str = ""
    timing: Timing | None = None
    """Set exactly when ``status`` is ``ok``."""
    memory: MemoryUse | None = None
    """Set when ``status`` is ``ok`` and memory was measured (``--memory``)."""

    def key(self) -> tuple[Any, ...]:
        """What identifies the case across runs (:func:`case_key` of :meth:`to_dict`)."""
        return case_key(self.to_dict(samples=False))

    def to_dict(self, *, samples: bool = True) -> dict[str, Any]:
        """The flat form, in :data:`JSON_COLUMNS` order (:data:`CSV_COLUMNS` without ``samples``)."""
        c = self.case
        flat: dict[str, Any] = {
            "implementation": c.implementation,
            "device": c.device,
            "dtype": c.dtype,
            "shape": c.shape_label,
            "block_size": c.block_size,
            "p": c.p,
            "mode": c.mode,
            "inplace": c.inplace,
            "family": c.family,
            "holes": c.holes,
        }
        timing = dataclasses.asdict(self.timing) if self.timing else {}
        memory = dataclasses.asdict(self.memory) if self.memory else {}
        flat.update({name: timing.get(name) for name in _TIMING_COLUMNS})
        if self.timing is not None:
            flat["noise"] = NOISE_SEPARATOR.join(self.timing.noise)
        flat.update({name: memory.get(name) for name in _MEMORY_COLUMNS})
        flat.update(status=str(self.status), reason=self.reason)
        if samples:
            flat.update({name: timing.get(name, []) for name in _SAMPLE_FIELDS})
        return flat

    @classmethod
    def from_dict(cls, flat: Mapping[str, Any]) -> CaseRecord:
        """The record of a flat case as :meth:`to_dict` writes it (missing samples are empty)."""
        case = RunCase(
            implementation=str(flat["implementation"]),
            device=str(flat["device"]),
            dtype=str(flat["dtype"]),
            shape=parse_shape(str(flat["shape"])),
            block_size=int(flat["block_size"]),
            p=float(flat["p"]),
            mode=str(flat["mode"]),
            inplace=_truthy(flat.get("inplace")),
            family=str(flat.get("family") or DEFAULT_FAMILY),
            holes=int(flat.get("holes") or 0),
        )
        status = CaseStatus(flat.get("status", "ok"))
        timing = None
        if status is CaseStatus.OK and flat.get("median_ms") is not None:
            timing = Timing(
                median_ms=float(flat["median_ms"]),
                iqr_ms=float(flat["iqr_ms"]),
                ci_low_ms=float(flat["ci_low_ms"]),
                ci_high_ms=float(flat["ci_high_ms"]),
                n_samples=int(flat["n_samples"]),
                floor_median_ms=float(flat["floor_median_ms"]),
                floor_ratio=_optional_float(flat.get("floor_ratio")),
                gbps=_optional_float(flat.get("gbps")),
                samples_ms=[float(v) for v in flat.get("samples_ms") or []],
                floor_samples_ms=[float(v) for v in flat.get("floor_samples_ms") or []],
                samples_per_round=[int(v) for v in flat.get("samples_per_round") or []],
                floor_samples_per_round=[int(v) for v in flat.get("floor_samples_per_round") or []],
                noise=_noise_flags(flat.get("noise")),
            )
        memory = None
        if any(flat.get(name) is not None for name in _MEMORY_COLUMNS):
            memory = MemoryUse(**{name: flat.get(name) for name in _MEMORY_COLUMNS})
        return cls(case, status, str(flat.get("reason") or ""), timing, memory)


def _optional_float(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def _noise_flags(value: Any) -> list[str]:
    """The flags of a ``noise`` column: a joined string (or a list); none when absent (older files)."""
    if not value:
        return []
    parts = value if isinstance(value, list) else str(value).split(NOISE_SEPARATOR)
    return [str(part).strip() for part in parts if str(part).strip()]


def _truthy(value: Any) -> bool:
    return value in (True, "True", "true", 1, "1")


def case_key(flat: Mapping[str, Any]) -> tuple[Any, ...]:
    """The identity of a flat case (from a JSON or CSV file) across runs: the key columns,
    with ``inplace`` read as a bool whatever its spelling, ``holes`` as an int, and a file
    written before the families read as DropBlock2d."""
    return tuple(_key_value(flat, column) for column in KEY_COLUMNS)


def case_family(flat: Mapping[str, Any]) -> str:
    """A flat case's family (DropBlock2d for a file written before the families)."""
    return str(_key_value(flat, "family"))


def _key_value(flat: Mapping[str, Any], column: str) -> Any:
    value = flat.get(column)
    if column == "inplace":
        return _truthy(value)
    if value is None or value == "":
        return _KEY_DEFAULTS.get(column, value)
    return int(value) if column == "holes" else value


def case_label(flat: Mapping[str, Any]) -> str:
    """The case for people: ``fused 8x256x56x56 float32 cpu k=7 p=0.1 forward [inplace]``
    (the family's own arguments: ``p=0.1`` for DropPath, ``holes=1 L=16`` for Cutout)."""
    inplace = " inplace" if _truthy(flat.get("inplace")) else ""
    return (
        f"{flat['implementation']} {flat['shape']} {flat['dtype']} {flat['device']}"
        f" {setting_label(flat)} {flat['mode']}{inplace}"
    )


def setting_label(flat: Mapping[str, Any]) -> str:
    """A flat case's arguments after ``x``, as :attr:`RunCase.setting_label` writes them."""
    family = _key_value(flat, "family")
    if family == DEFAULT_FAMILY:  # as files have always written them, whatever the number's spelling
        return f"k={flat['block_size']} p={flat['p']}"
    return RunCase("", "", "", (), int(flat["block_size"]), float(flat["p"]), "", family=family,
                   holes=_key_value(flat, "holes")).setting_label  # fmt: skip
