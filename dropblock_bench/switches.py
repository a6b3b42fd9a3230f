"""On/off switches read from the environment, with one vocabulary for "off". No torch import."""

from __future__ import annotations

import os

__all__ = ["HUGE_PAGES_ENV", "OFF_WORDS", "huge_page_advice_enabled", "switched_off"]

OFF_WORDS = frozenset({"0", "false", "no", "off"})


def switched_off(variable: str, default: str = "1") -> bool:
    """Whether the environment variable (``default`` when unset) says off: 0, false, no or off,
    in any case and with surrounding spaces."""
    return os.environ.get(variable, default).strip().lower() in OFF_WORDS


HUGE_PAGES_ENV = "DBENCH_HUGE_PAGES"


def huge_page_advice_enabled() -> bool:
    """Whether ``fused`` advises its fresh outputs onto huge pages: yes unless ``DBENCH_HUGE_PAGES``
    is 0, false, no or off (read at each call)."""
    return not switched_off(HUGE_PAGES_ENV)
