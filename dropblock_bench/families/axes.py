"""Contract fields of the regularizer families: enum members or their string values."""

from __future__ import annotations

import enum
from typing import Any


def coerce_fields(contract: Any, family: str, kinds: dict[str, type[enum.StrEnum]]) -> None:
    """Turn each named field of a frozen dataclass into its enum, or raise one ``ValueError``
    that lists the choices (``Contract(unit="row")`` and ``Contract(unit=Unit.ROW)`` are one)."""
    for name, kind in kinds.items():
        value = getattr(contract, name)
        try:
            object.__setattr__(contract, name, kind(value))
        except ValueError:
            choices = ", ".join(member.value for member in kind)
            raise ValueError(f"{family} contract field {name!r} must be one of {choices}; got {value!r}") from None
