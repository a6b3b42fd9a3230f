"""Peak memory and bytes saved for backward."""

from __future__ import annotations

import pytest
import torch

from dropblock_bench.memory import cpu_peak_supported, peak_memory_bytes, saved_for_backward_bytes

MB = 1 << 20


@pytest.mark.skipif(not cpu_peak_supported(), reason="needs Linux /proc and glibc")
def test_cpu_peak_sees_a_temporary_that_is_freed_inside_the_call():
    def call():
        temporary = torch.ones(16 * MB // 4)  # 16 MiB, touched, then freed
        return float(temporary[::4096].sum())

    peak = peak_memory_bytes(call, torch.device("cpu"))
    assert 15 * MB <= peak <= 20 * MB


@pytest.mark.skipif(not cpu_peak_supported(), reason="needs Linux /proc and glibc")
def test_cpu_peak_of_an_out_of_place_op_is_its_output():
    x = torch.randn(8 * MB // 4)
    for _ in range(3):
        x * 2.0
    peak = peak_memory_bytes(lambda: x * 2.0, torch.device("cpu"))
    assert 0.95 * x.nbytes <= peak <= 1.25 * x.nbytes


def test_saved_bytes_count_a_bool_mask_and_not_the_input():
    x = torch.randn(4, 8, 16, 16, requires_grad=True)
    mask = torch.rand(4, 8, 16, 16) > 0.5
    assert saved_for_backward_bytes(lambda: x.masked_fill(mask, 0.0), exclude=x) == mask.numel()
    assert saved_for_backward_bytes(lambda: x * 3.0, exclude=x) == 0
