"""Peak memory and bytes saved for backward."""

from __future__ import annotations

import mmap

import pytest
import torch

from dropblock_bench.run.memory import cpu_peak_supported, peak_memory_bytes, saved_for_backward_bytes

MB = 1 << 20
PAGE = mmap.PAGESIZE
CPU = torch.device("cpu")
needs_proc = pytest.mark.skipif(not cpu_peak_supported(), reason="needs Linux /proc and glibc")


# Resident memory is counted in whole pages: a buffer's first and last pages may be shared with
# memory resident before the call (at most a page each way off). The Python objects a call
# and the measurement itself create may open a new pymalloc pool (16 KiB since CPython 3.10).
SLACK = 2 * PAGE + 16 * 1024


def _bounds(nbytes: int) -> tuple[int, int]:
    """Where the peak of a call that holds one ``nbytes`` buffer at once must fall."""
    return nbytes - 2 * PAGE, nbytes + SLACK


@needs_proc
def test_cpu_peak_sees_a_temporary_that_is_freed_inside_the_call():
    size = 16 * MB

    def call():
        temporary = torch.ones(size // 4)  # touched, then freed before the call returns
        return float(temporary[-1])

    call()  # the first call of a process also faults in the allocator's and interpreter's own memory
    low, high = _bounds(size)
    assert low <= peak_memory_bytes(call, CPU) <= high


@needs_proc
def test_cpu_peak_of_an_out_of_place_op_is_its_output():
    x = torch.randn(8 * MB // 4)
    for _ in range(3):
        x * 2.0
    low, high = _bounds(x.nbytes)
    assert low <= peak_memory_bytes(lambda: x * 2.0, CPU) <= high


@needs_proc
def test_cpu_peak_of_a_call_that_allocates_nothing_is_about_zero_after_a_larger_one():
    x = torch.randn(1 * MB)
    float(torch.ones(64 * MB // 4)[-1])  # the process's high-water mark is now far above
    assert peak_memory_bytes(lambda: x.mul_(1.0), CPU) <= SLACK


def test_saved_bytes_count_a_bool_mask_and_not_the_input():
    x = torch.randn(4, 8, 16, 16, requires_grad=True)
    mask = torch.rand(4, 8, 16, 16) > 0.5
    assert saved_for_backward_bytes(lambda: x.masked_fill(mask, 0.0), exclude=x) == mask.numel()
    assert saved_for_backward_bytes(lambda: x * 3.0, exclude=x) == 0
