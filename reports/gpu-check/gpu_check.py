"""The CUDA checks of ``fused`` behind ``reports/gpu-check.sh`` (see there). Writes
``exactness.json`` and ``verify.json`` into OUT; with ``--summarise``, reads OUT/run.json and
writes ``summary.md``: each case's floor ratio and its fraction of the copy floor's bandwidth.

Exit 1 when a check fails (the shell script stops there)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch


def exactness() -> list[dict]:
    """Triton against the pure-torch kernel on CUDA, same seeds: the two share their sampler
    (a CUDA generator seeded with the call's seed), so forward, gradient and double backward
    must be identical in float32; opcheck of both operators on CUDA."""
    from dropblock_bench.implementations import fused_backends, fused_ops

    if fused_backends.triton_path() is None:
        return [{"case": "triton", "ok": False, "detail": "Triton is not installed"}]
    results = []
    for shared in (False, True):
        for shape, k, p in (((2, 3, 14, 14), 7, 0.1), ((3, 2, 9, 13), 4, 0.3), ((32, 64, 56, 56), 7, 0.1)):
            seed = torch.tensor(1234 + k)
            x = torch.randn(shape, device="cuda", requires_grad=True)
            x_ref = x.detach().clone().requires_grad_()
            out = fused_ops.drop_block2d(x, seed, p, k, shared, False)
            ref = fused_ops.drop_block2d(x_ref, seed, p, k, shared, True)
            upstream = torch.randn_like(out, requires_grad=True)
            (grad,) = torch.autograd.grad(out, x, upstream, create_graph=True)
            (grad_ref,) = torch.autograd.grad(ref, x_ref, upstream, create_graph=True)
            w = torch.randn_like(out)
            (second,) = torch.autograd.grad((grad * w).sum(), upstream)  # the operator applied to w
            (second_ref,) = torch.autograd.grad((grad_ref * w).sum(), upstream)
            results.append({
                "case": f"{shape} k={k} p={p} {'shared' if shared else 'per-channel'}",
                "forward_equal": bool(torch.equal(out, ref)),
                "grad_equal": bool(torch.equal(grad, grad_ref)),
                "double_backward_equal": bool(torch.equal(second, second_ref)),
                "dropped": int((ref == 0).sum()),
            })  # fmt: skip
            row = results[-1]
            row["ok"] = row["forward_equal"] and row["grad_equal"] and row["double_backward_equal"] and row["dropped"] > 0
        small = torch.randn(2, 3, 9, 9, device="cuda", requires_grad=True)
        for op, args in ((fused_ops.drop_block2d, (small,)), (fused_ops.drop_block2d_, (small.detach().clone(),))):
            try:
                torch.library.opcheck(op, (*args, torch.tensor(7), 0.3, 3, shared, False))
                results.append({"case": f"opcheck {op._name} shared={shared}", "ok": True})
            except Exception as error:  # noqa: BLE001 - reported, not raised
                results.append({"case": f"opcheck {op._name} shared={shared}", "ok": False, "detail": str(error)[:500]})
    return results


def verify() -> list[dict]:
    """The verify engine's checks of fused and fused-shared, run on CUDA (quick settings)."""
    from dropblock_bench.implementations.records import FUSED, FUSED_SHARED

    from dropblock_bench.verify import Verdict, VerifySettings, verify_implementation

    rows = []
    for record in (FUSED, FUSED_SHARED):
        cuda_only = dataclasses.replace(record, name=f"{record.name}[cuda]", devices=("cuda",))
        report = verify_implementation(cuda_only, VerifySettings.for_mode(quick=True))
        for check in report.checks:
            rows.append({"implementation": cuda_only.name, "check": check.check, "case": check.case,
                         "verdict": check.verdict.value, "reason": check.reason, "ok": check.verdict is not Verdict.FAIL})  # fmt: skip
    return rows


def summarise(out: Path) -> None:
    """summary.md from run.json: per case, time over the floor's and the fraction of its bandwidth."""
    run = json.loads((out / "run.json").read_text())
    lines = ["| case | ms | floor ms | floor ratio | fraction of copy bandwidth |", "|---|---:|---:|---:|---:|"]
    for case in run["cases"]:
        ratio = case.get("floor_ratio")
        if ratio:
            key = f"{case['implementation']} {case['shape']} {case['dtype']} {case['mode']}"
            lines.append(f"| {key} | {case['median_ms']:.3g} | {case['floor_median_ms']:.3g} | {ratio:.2f} | {1 / ratio:.2f} |")
    checks = [json.loads((out / name).read_text()) for name in ("exactness.json", "verify.json")]
    failed = sum(not row["ok"] for rows in checks for row in rows)
    header = f"GPU check: {torch.cuda.get_device_name()}, torch {torch.__version__}; {failed} failed checks\n\n"
    (out / "summary.md").write_text(header + "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--summarise", action="store_true")
    args = parser.parse_args()
    if args.summarise:
        summarise(args.out)
        return
    exact, judged = exactness(), verify()
    (args.out / "exactness.json").write_text(json.dumps(exact, indent=1) + "\n")
    (args.out / "verify.json").write_text(json.dumps(judged, indent=1) + "\n")
    failed = [row for row in exact + judged if not row["ok"]]
    for row in failed:
        print("FAILED", row, file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
