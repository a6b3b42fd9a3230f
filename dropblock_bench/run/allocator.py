"""Which memory regime a run times in, and what decides page faults on fresh outputs. No
printing, no torch import.

Out of place, a DropBlock returns a fresh tensor as large as its input, and where that memory
comes from can cost more than the DropBlock itself. glibc maps an allocation above its *mmap
threshold* afresh, so every call faults it in (zeroed) 4 KiB at a time, and serves one below
it from the heap, already faulted in; by default the threshold moves (up to 32 MiB) with the
sizes freed so far, and the heap top is trimmed and regrown. So the same 25 MiB output can
fault in one case and not in the next, depending on what ran before: noise that follows the
order of the cases, and that can decide which implementation looks faster.

Two regimes (``dbench run --malloc``):

* ``steady`` (:func:`steady_glibc_malloc`): every allocation comes from the heap, which glibc
  no longer hands back by itself (the peak-memory measurement trims it on purpose, after a
  case's timing), so after a case's warm-up no call page-faults, whatever ran before. A time
  measures the implementation's own work, as with CUDA's caching allocator.
* ``system``: the allocator as the program has it, page faults included. With glibc defaults
  and 4 KiB pages that is most of an out-of-place call at ResNet stages 1 and 2 (where
  ``fused`` advises its own output onto huge pages: see ``fused_cpu.CpuKernel.advise_huge_pages``).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from dropblock_bench.switches import OFF_WORDS, huge_page_advice_enabled

__all__ = [
    "MALLOC_REGIMES",
    "memory_settings",
    "steady_glibc_malloc",
    "thp_mode",
]

MALLOC_REGIMES = ("steady", "system")
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters, <malloc.h>
_NEVER_TRIM = 2**31 - 1  # mallopt takes a C int: ~2 GiB of free heap top before any is handed back
_THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def steady_glibc_malloc() -> str | None:
    """Make glibc serve every allocation of this process from its heap (no fresh mappings:
    ``M_MMAP_MAX=0``) and keep the heap (``M_TRIM_THRESHOLD`` ~2 GiB): memory once faulted in is
    reused. The process keeps its peak memory until it exits. Returns what was set, in words, or
    ``None`` when the C library is not glibc or refused (nothing changed then)."""
    try:
        name, _, version = (os.confstr("CS_GNU_LIBC_VERSION") or "").partition(" ")
    except (AttributeError, ValueError, OSError):
        return None
    if name != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        done = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM) == 1
    except (OSError, AttributeError):
        return None
    return f"steady (glibc {version}: every allocation from the heap, which is kept)" if done else None


def thp_mode() -> str | None:
    """The system's transparent huge page mode (``always``, ``madvise`` or ``never``), if Linux says."""
    try:
        text = _THP_MODE.read_text()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else None


def memory_settings(malloc: str | None) -> dict[str, object]:
    """What decides the page faults of fresh outputs, for a run's metadata: the allocator regime
    (``malloc``, from :func:`steady_glibc_malloc`; ``None``: the system's), the system's THP mode,
    whether torch puts large tensors on huge pages (``THP_MEM_ALLOC_ENABLE``) and whether
    ``fused`` advises its outputs onto them (``DBENCH_HUGE_PAGES``, on unless set to 0)."""
    return {
        "malloc": malloc or "system (as the C library does it)",
        "thp_mode": thp_mode(),
        "torch_thp_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE", "").strip().lower() not in OFF_WORDS | {""},
        "fused_huge_pages": huge_page_advice_enabled(),
    }
