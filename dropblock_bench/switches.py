"""On/off switches read from the environment, with one vocabulary for "off". No torch import."""

from __future__ import annotations

import os

__all__ = ["OFF_WORDS", "switched_off"]

OFF_WORDS = frozenset({"0", "false", "no", "off"})


def switched_off(variable: str, default: str = "1") -> bool:
    """Whether the environment variable (``default`` when unset) says off: 0, false, no or off,
    in any case and with surrounding spaces."""
    return os.environ.get(variable, default).strip().lower() in OFF_WORDS
