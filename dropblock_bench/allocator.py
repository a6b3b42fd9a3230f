"""The same memory allocator for every timed case: glibc's mmap threshold pinned, and what
decides page faults on fresh outputs recorded. No printing, no torch import.

Out of place, a DropBlock returns a fresh tensor as large as its input, and where that memory
comes from can cost more than the DropBlock: glibc serves an allocation above its *mmap
threshold* from a fresh mapping, faulted in (and zeroed) one 4 KiB page at a time on every
call, and one below it from the heap, reused without faults. By default the threshold moves
(up to 32 MiB) with the sizes freed so far and the heap top is trimmed and regrown, so the
same 25 MiB output can fault in one case and not in the next depending on what ran before:
noise that follows the order of the cases. :func:`pin_glibc_malloc` fixes the threshold at its
largest, 32 MiB, and stops trimming: every output up to 32 MiB reuses the heap, every larger
one is a fresh mapping, in every case of a run.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

__all__ = ["MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES", "memory_settings", "pin_glibc_malloc"]

MMAP_THRESHOLD_BYTES = 32 << 20  # the largest glibc accepts on 64-bit systems
TRIM_THRESHOLD_BYTES = 1 << 30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, <malloc.h>
_THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def pin_glibc_malloc() -> str | None:
    """Pin glibc's mmap threshold at 32 MiB (which also stops it moving) and its trim threshold at
    1 GiB, for this process. Returns what was set, in words, or ``None`` when the C library is
    not glibc or refused (nothing changed then)."""
    try:
        name, _, version = (os.confstr("CS_GNU_LIBC_VERSION") or "").partition(" ")
    except (AttributeError, ValueError, OSError):
        return None
    if name != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        pinned = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
        pinned = pinned and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    except (OSError, AttributeError):
        return None
    if not pinned:
        return None
    return f"glibc {version} mmap threshold pinned at {MMAP_THRESHOLD_BYTES >> 20} MiB, heap trimmed above {TRIM_THRESHOLD_BYTES >> 30} GiB"


def _thp_mode() -> str | None:
    """The system's transparent huge page mode (``always``, ``madvise`` or ``never``), if Linux says."""
    try:
        text = _THP_MODE.read_text()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else None


def memory_settings(malloc: str | None) -> dict[str, object]:
    """What decides the page faults of fresh outputs, for a run's metadata: the allocator pin
    (``malloc``, from :func:`pin_glibc_malloc`), the system's THP mode, whether torch puts large
    tensors on huge pages (``THP_MEM_ALLOC_ENABLE``) and whether ``fused`` advises its outputs
    onto them (``DBENCH_HUGE_PAGES``, on unless set to 0)."""
    off = {"0", "false", "no", "off"}
    return {
        "malloc": malloc or "as the C library does it",
        "thp_mode": _thp_mode(),
        "torch_thp_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE", "").strip().lower() not in off | {""},
        "fused_huge_pages": os.environ.get("DBENCH_HUGE_PAGES", "1").strip().lower() not in off,
    }
