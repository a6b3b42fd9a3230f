"""API checks: exact properties every DropBlock must have, whatever its contract.

Each check runs on its own, so an implementation that raises fails the checks it raised in
(naming the exception) and the run goes on.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from dropblock_bench.registry import DropBlockFn, Implementation
from dropblock_bench.verify.results import CheckResult, Verdict
from dropblock_bench.verify.sampling import call_seeded, derive_seed

API_CASE = "4x3x12x10 k=3 p=0.3"
_P, _K = 0.3, 3


def describe_exception(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"raised {type(exc).__name__}" + (f": {text[:160]}" if text else "")


def guarded(check: str, case: str, statistic: str, body: Callable[[], CheckResult]) -> CheckResult:
    """Run ``body``; an exception becomes a failed check that names it."""
    try:
        return body()
    except Exception as exc:  # noqa: BLE001 - the implementation's failure is the finding
        return CheckResult(check, case, statistic, verdict=Verdict.FAIL, reason=describe_exception(exc))


def _describe(tensor: torch.Tensor) -> str:
    shape = "x".join(map(str, tensor.shape))
    return f"{shape} {str(tensor.dtype).removeprefix('torch.')} {tensor.device.type}"


def _exact(check: str, statistic: str, ok: bool, expected: object, observed: object, reason: str) -> CheckResult:
    return CheckResult(
        check, API_CASE, statistic, expected, observed, verdict=Verdict.PASS if ok else Verdict.FAIL, reason="" if ok else reason
    )


def api_checks(impl: Implementation, fn: DropBlockFn, seed: int, device: str) -> list[CheckResult]:
    """Shape/dtype/device, no mutation, finiteness, seeding, p = 0, eval mode, p = 1, in place."""
    generator = torch.Generator().manual_seed(derive_seed(seed, "api-input"))
    x = torch.randn((4, 3, 12, 10), generator=generator).to(device)
    call_seed = derive_seed(seed, "api-call")

    def run(x_in: torch.Tensor, p: float = _P, **kwargs: object) -> torch.Tensor:
        return call_seeded(impl, fn, x_in, p, _K, call_seed, **kwargs)

    def shape() -> CheckResult:
        out = run(x.clone())
        got = _describe(out)
        want = _describe(x)
        return _exact("api.shape", "shape dtype device", got == want, want, got, f"output is {got} for an input of {want}")

    def mutation() -> CheckResult:
        x_in = x.clone()
        run(x_in)
        changed = int((x_in != x).sum())
        return _exact("api.mutation", "units changed", changed == 0, 0, changed, f"modified {changed} input units without inplace=True")

    def finite() -> CheckResult:
        bad = int((~torch.isfinite(run(x.clone()))).sum())
        return _exact("api.finite", "non-finite out", bad == 0, 0, bad, f"{bad} NaN/inf outputs from a finite input")

    def seeded() -> CheckResult:
        differ = int((run(x.clone()) != run(x.clone())).sum())
        return _exact("api.seeded", "units differing", differ == 0, 0, differ, f"same seed gave different outputs in {differ} units")

    def p_zero() -> CheckResult:
        differ = int((run(x.clone(), p=0.0) != x).sum())
        return _exact("api.p0", "units changed", differ == 0, 0, differ, f"p=0 changed {differ} units (must be the identity)")

    def eval_mode() -> CheckResult:
        differ = int((run(x.clone(), training=False) != x).sum())
        return _exact("api.eval", "units changed", differ == 0, 0, differ, f"training=False changed {differ} units (must be the identity)")

    def p_one() -> CheckResult:
        out = run(x.clone(), p=1.0)
        nonzero = int((out != 0).sum())
        nan = int(torch.isnan(out).sum())
        return _exact("api.p1", "non-zero out", nonzero == 0, 0, nonzero, f"p=1 left {nonzero} non-zero units ({nan} NaN)")

    def inplace() -> CheckResult:
        if not impl.supports_inplace:
            return CheckResult("api.inplace", API_CASE, "in input", verdict=Verdict.SKIP, reason="declares no inplace support")
        expected = run(x.clone())
        x_in = x.clone()
        out = run(x_in, inplace=True)
        same_storage = out.data_ptr() == x_in.data_ptr()
        differ = int((x_in != expected).sum())
        ok = same_storage and differ == 0
        reason = "returned a new tensor" if not same_storage else f"in-place result differs from out-of-place in {differ} units"
        return _exact("api.inplace", "in input", ok, True, same_storage and differ == 0, reason)

    bodies = [
        ("api.shape", "shape dtype device", shape),
        ("api.mutation", "units changed", mutation),
        ("api.finite", "non-finite out", finite),
        ("api.seeded", "units differing", seeded),
        ("api.p0", "units changed", p_zero),
        ("api.eval", "units changed", eval_mode),
        ("api.p1", "non-zero out", p_one),
        ("api.inplace", "in input", inplace),
    ]
    return [guarded(check, API_CASE, statistic, body) for check, statistic, body in bodies]
