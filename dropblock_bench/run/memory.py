"""Memory a call needs: peak bytes above what was resident before it, and bytes saved for backward.

How peak memory is measured (bytes):

* **CUDA**: the caching allocator's peak (``torch.cuda.max_memory_allocated`` after
  ``reset_peak_memory_stats``) minus what was allocated before the call.
* **CPU on Linux with glibc**: the process's peak resident set. Before the call, free heap
  memory is returned to the OS (``malloc_trim(0)``) and the kernel's high-water mark is reset
  (``/proc/self/clear_refs``); after it, ``VmHWM - VmRSS_before`` counts every page the call
  touched and held at once, temporaries inside operators included. Page granularity (4 KiB);
  other threads of the process count too, so the minimum over up to three calls is reported. The
  allocator's settings are not changed, so timings elsewhere are unaffected.
* Elsewhere: not measured (``None``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import re
import time
from collections.abc import Callable
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
REPEATS = 3
BUDGET_S = 0.3  # stop repeating once this much time is spent


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def _status_bytes(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise OSError(f"{key} not in {_STATUS}")
    return int(match.group(1)) * 1024


@functools.cache
def cpu_peak_supported() -> bool:
    """Whether this platform lets us reset and read the resident high-water mark."""
    if _libc() is None or not _STATUS.exists():
        return False
    try:
        _CLEAR_REFS.write_text("5")
        _status_bytes("VmHWM")
    except OSError:
        return False
    return True


def _cpu_peak_once(call: Callable[[], object]) -> int:
    libc = _libc()
    assert libc is not None
    libc.malloc_trim(0)
    _CLEAR_REFS.write_text("5")
    before = _status_bytes("VmRSS")
    result = call()
    peak = _status_bytes("VmHWM") - before
    del result
    return max(peak, 0)


def _cuda_peak_once(call: Callable[[], object], device: torch.device) -> int:
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    result = call()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    del result
    return max(peak, 0)


def peak_memory_bytes(call: Callable[[], object], device: torch.device) -> int | None:
    """Peak bytes above the resident/allocated baseline while ``call`` runs (see module doc):
    the minimum over up to ``REPEATS`` calls, fewer when calls are slow (``BUDGET_S``)."""
    if device.type == "cuda":
        once = functools.partial(_cuda_peak_once, call, device)
    elif device.type == "cpu" and cpu_peak_supported():
        once = functools.partial(_cpu_peak_once, call)
    else:
        return None
    started = time.perf_counter()
    peaks = [once()]
    while len(peaks) < REPEATS and time.perf_counter() - started < BUDGET_S:
        peaks.append(once())
    return min(peaks)


def saved_for_backward_bytes(forward: Callable[[], torch.Tensor], exclude: torch.Tensor) -> int:
    """Bytes of the tensors autograd saves while ``forward`` runs, counting each storage once
    and leaving out ``exclude``'s storage (the input, which lives on anyway)."""
    storages: dict[int, int] = {}
    excluded = exclude.untyped_storage().data_ptr()

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() != excluded:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = forward()
    del out
    return sum(storages.values())
