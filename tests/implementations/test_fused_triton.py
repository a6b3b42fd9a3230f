"""The Triton kernels of `fused`, run on the CPU by Triton's interpreter (TRITON_INTERPRET=1).

They must give exactly the pure-torch path's output and gradient for the same generator: the
same sampler draws the same blocks, and both compute x * numel / kept in float32. (The compiled
CPU kernel has its own sampler: same law, different draws.) bfloat16 is checked against that
float32 product rounded toward zero, which is how the interpreter converts float32 to bfloat16
(Triton 3's ``_convert_float`` without a rounding mode); the hardware rounds to nearest even,
as torch does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

pytest.importorskip("triton", reason="Triton is not installed (pip install triton; Linux x86_64 only)")

CHECK = textwrap.dedent(
    """
    import json, torch
    from dropblock_bench import spec
    from dropblock_bench.implementations import fused, fused_ops
    from dropblock_bench.implementations.fused_triton import drop_block2d_triton

    results = []
    cases = [((2, 3, 14, 14), 7, 0.1), ((3, 2, 9, 13), 4, 0.3), ((2, 2, 5, 9), 7, 0.2), ((1, 2, 7, 7), 7, 0.5)]
    def toward_zero(product, dropped):  # float32 -> bfloat16 as the interpreter does it
        bits = product.float().contiguous().view(torch.int32) & -65536
        return torch.where(dropped, 0.0, bits.view(torch.float32)).to(torch.bfloat16)

    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        for shape, k, p in cases:
            for contract in (fused.CONTRACT, fused.SHARED_CONTRACT):
                x = (torch.rand(shape, generator=torch.Generator().manual_seed(1)) + 0.5).to(dtype).requires_grad_()
                x_ref = x.detach().clone().requires_grad_()
                out = drop_block2d_triton(x, p, k, contract, generator=torch.Generator().manual_seed(7))
                # the operator's pure-torch kernel with seed 7 samples from Generator().manual_seed(7)
                ref = fused_ops.drop_block2d(x_ref, torch.tensor(7), p, k, contract.mask == "shared", True)
                upstream = torch.randn(shape, generator=torch.Generator().manual_seed(3)).to(dtype)
                (out.float() * upstream.float()).sum().backward()
                (ref.float() * upstream.float()).sum().backward()
                # The CPU shared path folds the scale into its half-precision multiplier (two
                # roundings); the kernel rounds once. Allow exactly that: one half-precision ulp.
                folded = contract.mask == "shared" and dtype == torch.float16
                same = (lambda a, b: torch.allclose(a.float(), b.float(), rtol=2**-10, atol=0)) if folded else torch.equal
                forward_equal, grad_equal = same(out, ref), same(x.grad, x_ref.grad)
                if dtype == torch.bfloat16:
                    dropped = ref == 0
                    scale = spec.kept_scale(dropped.sum(), dropped.numel())
                    forward_equal = torch.equal(out, toward_zero(x.detach().float() * scale, dropped))
                    grad_equal = torch.equal(x.grad, toward_zero(upstream.float() * scale, dropped))
                results.append({
                    "case": f"{shape} k={k} p={p} {contract.mask} {dtype}",
                    "forward_equal": bool(forward_equal) and bool(torch.equal(out == 0, ref == 0)),
                    "grad_equal": bool(grad_equal),
                    "dropped": int((ref == 0).sum()),
                })
    inplace = torch.rand(2, 3, 14, 14) + 0.5
    expected = fused_ops.drop_block2d(inplace.clone(), torch.tensor(9), 0.2, 5, False, True)
    returned = drop_block2d_triton(inplace, 0.2, 5, fused.CONTRACT, inplace=True, generator=torch.Generator().manual_seed(9))
    results.append({"case": "inplace", "forward_equal": bool(torch.equal(inplace, expected)) and returned.data_ptr() == inplace.data_ptr(), "grad_equal": True, "dropped": int((expected == 0).sum())})
    print(json.dumps(results))
    """
)


@pytest.mark.slow
def test_triton_kernels_match_the_cpu_path_exactly():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    completed = subprocess.run([sys.executable, "-c", CHECK], env=env, check=False, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    assert len(results) == 25
    mismatched = [r["case"] for r in results if not (r["forward_equal"] and r["grad_equal"])]
    assert not mismatched, mismatched
    assert sum(r["dropped"] for r in results) > 0  # the cases do drop something


def test_the_triton_path_loads_where_triton_is_installed():
    from dropblock_bench.implementations import fused_backends

    assert fused_backends.triton_path() is not None


@pytest.mark.gpu
def test_cuda_inputs_take_the_triton_path(monkeypatch):
    from dropblock_bench.implementations import fused, fused_backends

    kernel, calls = fused_backends.triton_path(), []

    def spy(*args, **kwargs):
        calls.append(args[0].device)
        return kernel(*args, **kwargs)

    monkeypatch.setattr(fused_backends, "triton_path", lambda: spy)
    x = torch.randn(2, 3, 14, 14, device="cuda")
    out = fused.drop_block2d(x, 0.1, 7, generator=torch.Generator(device="cuda").manual_seed(0))
    assert calls == [x.device]
    assert out.device == x.device and out.shape == x.shape
