"""The steady allocator regime of `dbench run` and the memory settings it records."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from dropblock_bench.run import allocator

GLIBC = (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc") if hasattr(os, "confstr") else False

# Where a 40 MiB malloc lands (above glibc's largest mmap threshold): below the program break
# is the heap, above it a fresh mapping; and whether freeing it hands the heap back.
PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from dropblock_bench.run.allocator import steady_glibc_malloc
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.sbrk.restype, libc.sbrk.argtypes = ctypes.c_void_p, [ctypes.c_ssize_t]
    steady = steady_glibc_malloc() if sys.argv[1] == "steady" else None
    block = libc.malloc(40 << 20)
    from_heap = block < libc.sbrk(0)
    brk = libc.sbrk(0)
    libc.free(block)
    print(steady is not None, from_heap, libc.sbrk(0) == brk)
    """
)


def _probe(mode: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_steady_a_40_mib_allocation_comes_from_the_heap_and_the_heap_is_kept():
    assert _probe("steady") == ["True", "True", "True"]


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_by_default_glibc_maps_40_mib_afresh():
    """The control: above glibc's mmap threshold an allocation is a fresh mapping."""
    assert _probe("default")[:2] == ["False", "False"]


def test_memory_settings_follow_the_environment(monkeypatch):
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "1")
    monkeypatch.setenv("DBENCH_HUGE_PAGES", "0")
    settings = allocator.memory_settings("steady (test)")
    assert settings["malloc"] == "steady (test)" and settings["torch_thp_alloc"] is True and settings["fused_huge_pages"] is False
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE")
    monkeypatch.delenv("DBENCH_HUGE_PAGES")
    settings = allocator.memory_settings(None)
    assert settings["torch_thp_alloc"] is False and settings["fused_huge_pages"] is True
    assert settings["malloc"].startswith("system")
