"""The compiled CPU kernel behind ``fused`` and ``fused-shared``: built on first use, loaded with ctypes.

``fused_cpu.c`` is plain C11 (no Python or torch headers), so building it takes a C compiler
and well under a second; the shared library is cached per source, compiler and CPU under
``$DBENCH_CACHE_DIR`` (default ``$XDG_CACHE_HOME/dropblock-bench`` or ``~/.cache/dropblock-bench``).
OpenMP threads follow ``torch.get_num_threads()``; on Linux the library binds to the
``libgomp`` torch has already loaded, so both share one thread pool.

When there is no compiler, the build fails, or ``DBENCH_CPU_KERNEL=0`` is set, :func:`load`
returns ``None`` and ``fused`` runs its pure-torch path (same law, slower); :func:`status`
says which and why.

Out-of-place outputs are advised onto transparent huge pages on Linux
(:meth:`CpuKernel.advise_huge_pages`; ``DBENCH_HUGE_PAGES=0`` turns that off).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import math
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from dropblock_bench.switches import huge_page_advice_enabled, switched_off

from .fused_sampling import SeedGeometry

__all__ = ["CpuKernel", "Plan", "SeedGeometry", "Seeds", "load", "status"]

DISABLE_ENV = "DBENCH_CPU_KERNEL"
CACHE_ENV = "DBENCH_CACHE_DIR"
_SOURCE = "fused_cpu.c"
_DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
_BASE_FLAGS = ("-O3", "-funroll-loops", "-std=c11", "-fPIC", "-shared")
# Tried in order: the first that builds is kept.
_FLAG_SETS = (("-march=native", "-fopenmp"), ("-fopenmp",), ())


class Seeds(NamedTuple):
    """The seeds of ``masks`` masks as ascending int64 flat indices ``mask * per_mask + position``,
    ``position`` being row-major in the mask's seed region of ``per_mask = rows * cols`` positions."""

    flat: Tensor
    masks: int
    per_mask: int


class _Args(ctypes.Structure):
    """``dbf_args`` of fused_cpu.c: a :class:`SeedGeometry` as the kernel reads it."""

    _fields_ = [(name, ctypes.c_int64) for name in ("height", "width", "k", "top0", "rows", "left0", "cols")]
    _fields_ += [("gamma", ctypes.c_double)]


_FLOAT32_MAX = torch.finfo(torch.float32).max
# dbf_drop's callback: the scale for (dropped units, units), as a double.
_SCALE_FN = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_int64, ctypes.c_int64)
_callback_error = threading.local()  # an exception raised by a scale_of, for the thread that called dbf_drop


@functools.lru_cache(maxsize=64)
def _scale_callback(scale_of: Callable[[int, int], float]) -> Any:  # a ctypes CFUNCTYPE instance
    """``scale_of`` as a C function pointer, kept alive by the cache (keyed by the callable:
    pass a module-level function such as ``spec.kept_scale_of_count``, not a fresh lambda each
    call). An exception it raises is stored for :meth:`Plan.drop` to re-raise and the kernel
    gets NaN, so it writes nothing."""

    def call(dropped: int, units: int) -> float:
        try:
            return float(scale_of(dropped, units))
        except BaseException as error:  # noqa: BLE001 - re-raised by Plan.drop
            _callback_error.error = error
            return math.nan

    return _SCALE_FN(call)


class CpuKernel:
    """Typed entry points of the loaded library. Inputs are not checked here; callers pass
    contiguous CPU tensors of a supported dtype."""

    def __init__(self, library: ctypes.CDLL, path: Path) -> None:
        self.path = path
        i64, u64, ptr, c_int = ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_int
        self._sample = library.dbf_sample
        self._sample.restype = i64
        self._sample.argtypes = [u64, i64, ctypes.POINTER(_Args), ptr, i64, ctypes.POINTER(i64), c_int]
        self._apply = library.dbf_apply
        self._apply.restype = c_int
        self._apply.argtypes = [c_int, ptr, ptr, i64, i64, ptr, i64, ctypes.POINTER(_Args), ctypes.c_float, c_int]
        self._drop = library.dbf_drop
        self._drop.restype = c_int
        self._drop.argtypes = [c_int, ptr, ptr, i64, u64, i64, ctypes.POINTER(_Args), _SCALE_FN,
                               ctypes.POINTER(ctypes.c_float), c_int]
        self._cubes = library.dbf_cubes
        self._cubes.restype = i64
        self._cubes.argtypes = [u64, i64, i64, i64, i64, i64, ctypes.c_double, ptr, i64, ctypes.POINTER(i64), c_int]
        self._advise = library.dbf_advise_huge_pages
        self._advise.restype = i64
        self._advise.argtypes = [ptr, i64]
        self._supported = frozenset(d for d, code in _DTYPE_CODES.items() if library.dbf_supports(code))

    def supports(self, dtype: torch.dtype) -> bool:
        return dtype in self._supported

    def cubes(self, seed: int, maps: int, volume: tuple[int, int, int], k: int, gamma: float) -> tuple[Seeds, int]:
        """DropBlock3d's seeds for ``maps`` (D, H, W) volumes: Bernoulli(``gamma``) corners of
        k x k x k cubes where they fit, each written as a k x k square in the k planes it spans,
        as :meth:`apply` takes seeds (masks: the ``maps * D`` planes, positions: the squares'
        corners), and the exact number of units in the cubes' union. Depends on the 64-bit
        ``seed`` and the arguments only, not on the thread count."""
        depth, height, width = volume
        per_plane = (height - k + 1) * (width - k + 1)
        expected = maps * (depth - k + 1) * per_plane * gamma
        capacity, dropped = int(k * (expected + 8.0 * math.sqrt(expected)) + 64), ctypes.c_int64(0)
        while True:
            flat = torch.empty(capacity, dtype=torch.int64)
            total = self._cubes(seed, maps, depth, height, width, k, gamma, flat.data_ptr(), capacity, dropped,
                                torch.get_num_threads())  # fmt: skip
            if total < 0:
                raise MemoryError("fused CPU kernel: out of memory for its scratch buffers")
            if total <= capacity:
                return Seeds(flat[:total], maps * depth, per_plane), dropped.value
            capacity = total

    def advise_huge_pages(self, tensor: Tensor) -> int:
        """Ask Linux to back ``tensor``'s memory with transparent huge pages wherever whole
        2 MiB-aligned pages fit; returns the bytes advised (0: none fit, not Linux, the kernel
        refused, or ``DBENCH_HUGE_PAGES=0``). Contents are untouched.

        Meant for a fresh output that the caller writes in full right away: a large tensor is
        freshly mmapped by the allocator, and writing it faults in one zeroed page at a time,
        2 MiB instead of 4 KiB with this advice. At 32x512x28x28 float32 that is ~15 ms of a
        ~20 ms out-of-place call here. Memory that is already in use is not moved. Needs the
        system's THP mode (``/sys/kernel/mm/transparent_hugepage/enabled``) to be ``madvise``
        or ``always``; with ``never`` it changes nothing.
        """
        if not huge_page_advice_enabled():
            return 0
        return self._advise(tensor.data_ptr(), tensor.numel() * tensor.element_size())

    def plan(self, geometry: SeedGeometry, masks: int, maps_per_mask: int, dtype: torch.dtype) -> Plan:
        """The calls for ``masks`` masks of ``geometry``, each applied to ``maps_per_mask``
        consecutive maps of ``dtype``, with their arguments converted once."""
        return Plan(self, geometry, masks, maps_per_mask, dtype)

    def sample(self, seed: int, masks: int, geometry: SeedGeometry) -> tuple[Seeds, int]:
        """:meth:`Plan.sample` for a one-off call."""
        return self.plan(geometry, masks, 1, torch.float32).sample(seed)

    def apply(self, x: Tensor, out: Tensor, seeds: Seeds, maps_per_mask: int, geometry: SeedGeometry, scale: float) -> None:
        """:meth:`Plan.apply` for a one-off call."""
        self.plan(geometry, seeds.masks, maps_per_mask, x.dtype).apply(x, out, seeds, scale)


class Plan:
    """One geometry's kernel calls with their arguments converted once (cache it per shape:
    at late ResNet stages a forward pass costs about as much as Python glue)."""

    def __init__(self, kernel: CpuKernel, geometry: SeedGeometry, masks: int, maps_per_mask: int, dtype: torch.dtype) -> None:
        self.geometry, self.masks, self.maps_per_mask = geometry, masks, maps_per_mask
        self.maps = masks * maps_per_mask
        self.per_mask = geometry.rows * geometry.cols
        expected = masks * self.per_mask * geometry.gamma
        self._capacity = int(expected + 8.0 * math.sqrt(expected) + 64)  # too small with odds below 1e-15
        self._args = _Args(*geometry)
        self._dtype_code = _DTYPE_CODES[dtype]
        self._sample, self._apply, self._drop = kernel._sample, kernel._apply, kernel._drop

    def drop(self, seed: int, x: Tensor, out: Tensor, scale_of: Callable[[int, int], float]) -> float:
        """:meth:`sample` then :meth:`apply` in one kernel call that keeps no seeds (the call
        without autograd), with ``scale = scale_of(dropped units, units of x)``: the kernel's
        threads sample, the calling thread asks ``scale_of`` once every count is in, and the
        threads apply (each the maps whose seeds it drew, or, with few sampling groups, an even
        share of maps from the joined seeds). Same output as the two calls. Returns the scale;
        an exception from ``scale_of`` propagates and nothing is written."""
        scale = ctypes.c_float()
        code = self._drop(self._dtype_code, x.data_ptr(), out.data_ptr(), self.maps_per_mask, seed, self.masks,
                          self._args, _scale_callback(scale_of), scale, torch.get_num_threads())
        if code == -2:
            error = getattr(_callback_error, "error", None)
            _callback_error.error = None
            if error is not None:
                raise error
            raise ValueError("scale_of must return a finite scale >= 0")
        if code != 0:
            raise MemoryError("fused CPU kernel: out of memory for its scratch buffers")
        return scale.value

    def sample(self, seed: int) -> tuple[Seeds, int]:
        """Bernoulli(gamma) seeds on every position of the masks' seed regions, and the exact
        number of units they drop (each mask's blocks counted as a union, summed over masks).

        Depends on the 64-bit ``seed`` and the geometry only: the same seed gives the same
        seeds whatever the thread count.
        """
        capacity, dropped = self._capacity, ctypes.c_int64(0)
        while True:
            flat = torch.empty(capacity, dtype=torch.int64)
            total = self._sample(seed, self.masks, self._args, flat.data_ptr(), capacity, dropped, torch.get_num_threads())
            if total < 0:
                raise MemoryError("fused CPU kernel: out of memory for its scratch buffers")
            if total <= capacity:
                return Seeds(flat[:total], self.masks, self.per_mask), dropped.value
            capacity = total

    def apply(self, x: Tensor, out: Tensor, seeds: Seeds, scale: float) -> None:
        """``out = x * scale`` with the blocks of every (H, W) map zeroed; map ``m`` takes the
        blocks of mask ``m // maps_per_mask``. Both tensors contiguous, of this plan's dtype and
        ``masks * maps_per_mask`` maps; ``out`` may be ``x``. ``scale`` is finite and >= 0."""
        if not 0.0 <= scale <= _FLOAT32_MAX:
            raise ValueError(f"scale must be finite and >= 0, got {scale}")
        code = self._apply(self._dtype_code, x.data_ptr(), out.data_ptr(), self.maps, self.maps_per_mask,
                           seeds.flat.data_ptr(), seeds.flat.numel(), self._args, scale, torch.get_num_threads())
        if code != 0:
            raise MemoryError("fused CPU kernel: out of memory for its scratch buffers")


def _cache_root() -> Path:
    """Where built kernels go: ``$DBENCH_CACHE_DIR``, else the user cache, else (when that
    cannot be written) a per-user folder in the temporary directory."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    root = Path(base) / "dropblock-bench"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if os.access(root, os.W_OK):
            return root
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"dropblock-bench-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def _cpu_signature() -> str:
    """Identifies the CPU a ``-march=native`` build is for (Linux: the flags line)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")


def _build(compiler: str, source: Path, flags: tuple[str, ...], target: Path) -> str | None:
    """Compile ``source`` into ``target`` atomically; the compiler's complaint, or None on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(handle)
    try:
        done = subprocess.run([compiler, *_BASE_FLAGS, *flags, str(source), "-o", scratch, "-lm"],
                              check=False, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        os.replace(scratch, target)
        return None
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)


_status = "not loaded yet"


@functools.cache
def load() -> CpuKernel | None:
    """The kernel, building it if needed; ``None`` (and :func:`status` says why) when unavailable."""
    global _status
    if switched_off(DISABLE_ENV):
        _status = f"disabled by {DISABLE_ENV}"
        return None
    compiler = _compiler()
    if compiler is None:
        _status = "no C compiler found (set CC); using the pure-torch path"
        return None
    with resources.as_file(resources.files(__package__).joinpath(_SOURCE)) as source:
        code = source.read_bytes()
        try:
            version = subprocess.run([compiler, "--version"], check=False, capture_output=True, text=True, timeout=60).stdout
        except (OSError, subprocess.SubprocessError) as error:
            _status = f"C compiler {compiler} does not run ({error}); using the pure-torch path"
            return None
        complaints = []
        for flags in _FLAG_SETS:
            recipe = " ".join((*_BASE_FLAGS, *flags))
            key = hashlib.sha256(b"\0".join([code, compiler.encode(), version.encode(), recipe.encode(),
                                             _cpu_signature().encode()])).hexdigest()[:20]
            target = _cache_root() / "kernels" / f"fused_cpu-{key}.so"
            if not target.exists():
                try:
                    complaint = _build(compiler, source, flags, target)
                except (OSError, subprocess.SubprocessError) as error:
                    complaint = str(error)
                if complaint is not None:
                    complaints.append(f"{' '.join(flags) or 'plain'}: {complaint}")
                    continue
            try:
                kernel = CpuKernel(ctypes.CDLL(str(target)), target)
            except OSError as error:
                complaints.append(f"loading {target}: {error}")
                continue
            _status = f"compiled kernel {target}" + ("" if "-fopenmp" in flags else " (single-threaded: no OpenMP)")
            return kernel
    _status = "build failed (" + "; ".join(complaints) + "); using the pure-torch path"
    return None


def status() -> str:
    """Which CPU path ``fused`` takes and why, in one line."""
    load()
    return _status
