"""API checks: exact properties every DropBlock must have, whatever its contract.

Each check runs on its own, so an implementation that raises fails the checks it raised in
(naming the exception) and the run goes on. Hard rules fail; conventions warn:

* fail: shape, dtype or device changed; input mutated; NaN or inf from a finite input (at
  p = 1 too); not reproducible from its seed; p = 0 or eval mode changing values by more
  than :data:`ULP_TOLERANCE` units in the last place; a broken in-place mode.
* warn: p = 1 leaving finite non-zero units (the convention, as ``torch.nn.Dropout``, is all
  zeros); p = 0 or eval mode off by at most :data:`ULP_TOLERANCE` ulp (float rounding of
  ``x * numel / kept``, not a defect).
* skip: a mode the implementation does not take (eval mode for a plain ``f(x, p, k)``,
  in place where it declares no support), with the reason.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from dropblock_bench.errors import ImplementationLoadError
from dropblock_bench.registry import DropBlockFn, Implementation, callable_problem
from dropblock_bench.verify.results import CheckResult, Verdict
from dropblock_bench.verify.sampling import call_seeded, checked_output, derive_seed

API_SHAPE = (4, 3, 12, 10)
API_CASE = "4x3x12x10 k=3 p=0.3"
_P, _K = 0.3, 3
ULP_TOLERANCE = 4
"""Most units in the last place (of the input's dtype) an identity may be off by with a warning."""


def describe_exception(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"raised {type(exc).__name__}" + (f": {text[:160]}" if text else "")


def load_failure(impl: Implementation, unavailable: str | None) -> tuple[DropBlockFn | None, CheckResult | None]:
    """Load ``impl``'s callable and check it takes its family's signature: ``(fn, None)``, or
    ``(None, a failed "load" check)`` naming why not (``unavailable``: why it cannot run here)."""
    try:
        if unavailable is not None:
            raise RuntimeError(unavailable)
        fn = impl.load()
        problem = callable_problem(fn, impl.name, impl.family_record)
        if problem is not None:
            raise ImplementationLoadError(problem)
    except (ImplementationLoadError, RuntimeError) as exc:
        return None, CheckResult("load", "-", "callable loads", verdict=Verdict.FAIL, reason=describe_exception(exc))
    return fn, None


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


def ulps_apart(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``|a - b|`` in units in the last place of ``b`` (in ``b``'s dtype), elementwise, as float64."""
    spacing = (torch.nextafter(b.abs(), torch.full_like(b, float("inf"))) - b.abs()).double()
    return (a.double() - b.double()).abs() / spacing


def identity_check(check: str, what: str, out: torch.Tensor, x: torch.Tensor) -> CheckResult:
    """``out`` must equal ``x``: pass when bit-exact, warn within :data:`ULP_TOLERANCE` ulp, else fail."""
    statistic = f"units changed (tol {ULP_TOLERANCE} ulp)"
    dtype = str(x.dtype).removeprefix("torch.")
    if not bool(torch.isfinite(out).all()):
        bad = int((~torch.isfinite(out)).sum())
        return CheckResult(check, API_CASE, statistic, 0, "NaN/inf", verdict=Verdict.FAIL, reason=f"{what} gave {bad} NaN or infinite units")
    differ = int((out != x).sum())
    if differ == 0:
        return CheckResult(check, API_CASE, statistic, 0, 0)
    worst = float(ulps_apart(out, x).max())
    summary = f"{what} changed {differ} of {x.numel()} units by up to {worst:.3g} ulp of {dtype}"
    if worst <= ULP_TOLERANCE:
        return CheckResult(check, API_CASE, statistic, 0, differ, verdict=Verdict.WARN, reason=f"{summary}: float rounding, not bit-exact")
    return CheckResult(check, API_CASE, statistic, 0, differ, verdict=Verdict.FAIL, reason=f"{summary} (must be the identity)")


def api_checks(impl: Implementation, fn: DropBlockFn, seed: int, device: str) -> list[CheckResult]:
    """Shape/dtype/device, no mutation, finiteness, seeding, p = 0, eval mode, p = 1, in place.

    Longer than most functions on purpose: one short closure per check, over one shared input
    and seed, so the checks read as the list they are and each runs guarded on its own.
    """
    generator = torch.Generator().manual_seed(derive_seed(seed, "api-input"))
    x = torch.randn(API_SHAPE, generator=generator).to(device)
    call_seed = derive_seed(seed, "api-call")

    def run(x_in: torch.Tensor, p: float = _P, **kwargs: object) -> torch.Tensor:
        out = call_seeded(impl, fn, x_in, p, _K, call_seed, **kwargs)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"returned {type(out).__name__}, not a Tensor")
        return out

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
        bad = int((~torch.isfinite(checked_output(x, run(x.clone())))).sum())
        return _exact("api.finite", "non-finite out", bad == 0, 0, bad, f"{bad} NaN/inf outputs from a finite input")

    def seeded() -> CheckResult:
        differ = int((checked_output(x, run(x.clone())) != checked_output(x, run(x.clone()))).sum())
        return _exact("api.seeded", "units differing", differ == 0, 0, differ, f"same seed gave different outputs in {differ} units")

    def p_zero() -> CheckResult:
        return identity_check("api.p0", "p=0", checked_output(x, run(x.clone(), p=0.0)), x)

    def eval_mode() -> CheckResult:
        if not impl.supports_training:
            return CheckResult("api.eval", API_CASE, "units changed", verdict=Verdict.SKIP, reason="f takes no `training` argument")
        return identity_check("api.eval", "training=False", checked_output(x, run(x.clone(), training=False)), x)

    def p_one() -> CheckResult:
        out = checked_output(x, run(x.clone(), p=1.0))
        bad = int((~torch.isfinite(out)).sum())
        if bad:
            return CheckResult("api.p1", API_CASE, "non-zero out", 0, "NaN/inf", verdict=Verdict.FAIL, reason=f"p=1 gave {bad} NaN or infinite units")
        nonzero = int((out != 0).sum())
        if nonzero == 0:
            return CheckResult("api.p1", API_CASE, "non-zero out", 0, 0)
        return CheckResult(
            "api.p1",
            API_CASE,
            "non-zero out",
            0,
            nonzero,
            verdict=Verdict.WARN,
            reason=f"p=1 left {nonzero} of {x.numel()} units non-zero; the convention (as torch.nn.Dropout) is all zeros",
        )

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
