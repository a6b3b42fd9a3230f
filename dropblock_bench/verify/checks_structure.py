"""Checks of structure: independence, normalisation, gradient and half-precision dtypes."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

from dropblock_bench import spec
from dropblock_bench.registry import DropBlockFn, Implementation
from dropblock_bench.verify.checks_api import describe_exception, guarded
from dropblock_bench.verify.results import CheckResult, Verdict
from dropblock_bench.verify.sampling import call_seeded, checked_output, derive_seed
from dropblock_bench.verify.settings import STRUCTURE_CASE

CASE = STRUCTURE_CASE
CHANNELS = 4
SCALE_SAMPLES = 64
HALF_SHAPE = (1, 2, 250, 200)  # 100,000 units: a float16 count would overflow (max 65,504)
HALF_TOLERANCE_EPS = 4  # kept units may differ from the scale by this many machine epsilons


def _call(impl: Implementation, fn: DropBlockFn, x: torch.Tensor, seed: int, **kwargs: object) -> torch.Tensor:
    return call_seeded(impl, fn, x, CASE.p, CASE.block_size, seed, **kwargs)


def _correlation_check(
    check: str, statistic: str, a: np.ndarray, b: np.ndarray, what: str, contract: spec.Contract
) -> CheckResult:
    """Pearson correlation test of paired per-map drop counts (independent pairs expected).

    Counts that never vary, where the contract gives them a positive variance, are evidence
    of their own: at these sample sizes that outcome has probability ~0 (p reported as 0).
    """
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        variance = spec.drop_count_variance(contract, CASE.p, CASE.height, CASE.width, CASE.block_size)
        if variance == 0.0:
            return CheckResult(check, CASE.label, statistic, verdict=Verdict.SKIP, reason="drop counts constant by contract")
        return CheckResult(
            check,
            CASE.label,
            statistic,
            expected=0.0,
            observed="constant",
            p_value=0.0,
            reason=f"{what}' drop counts never vary over {len(a)} pairs: the same mask is reused",
        )
    result = stats.pearsonr(a, b)
    return CheckResult(
        check,
        CASE.label,
        statistic,
        expected=0.0,
        observed=round(float(result.statistic), 4),
        p_value=float(result.pvalue),
        reason=f"{what} are correlated (r = {result.statistic:+.3f}, {len(a)} pairs): masks are not independent",
    )


ROUNDING_SPREAD = 16 * float(np.finfo(np.float32).eps)
"""Calls' mean outputs closer than this differ by float32 rounding of the scale, not by chance."""
STRUCTURE_BATCH = 9  # odd, so pairs of samples leave one out
STRUCTURE_CHECKS = (
    ("independence.channels", "channel pairs"),
    ("independence.samples", "sample pairs"),
    ("independence.calls", "call pairs"),
    ("normalisation.mean", "mean out"),
)


def _exact_sharing_check(check: str, differ: int, total: int, what: str, declared: str) -> CheckResult:
    return CheckResult(
        check,
        CASE.label,
        "differing",
        expected=0,
        observed=differ,
        verdict=Verdict.PASS if differ == 0 else Verdict.FAIL,
        reason="" if differ == 0 else f"{differ} of {total} {what} (contract: {declared})",
    )


def independence_and_mean_checks(
    impl: Implementation, fn: DropBlockFn, samples: int, seed: int, device: str
) -> list[CheckResult]:
    """Across channels, samples and calls; and the mean of the output (input all ones).

    ``samples`` samples are drawn in calls of :data:`STRUCTURE_BATCH`. Each test pairs only
    maps that its contract makes independent whatever else is shared: channels within the
    first sample of each call, samples within a call, the first samples of consecutive calls.
    """
    calls = max(4, 2 * math.ceil(samples / STRUCTURE_BATCH / 2))
    try:
        outs = []
        for call in range(calls):
            x = torch.ones((STRUCTURE_BATCH, CHANNELS, CASE.height, CASE.width), device=device)
            outs.append(checked_output(x, _call(impl, fn, x, derive_seed(seed, "independence", call))).detach().cpu())
        out = torch.stack(outs)  # (calls, batch, channels, H, W)
    except Exception as exc:  # noqa: BLE001 - report, do not abort the run
        reason = describe_exception(exc)
        return [CheckResult(check, CASE.label, statistic, verdict=Verdict.FAIL, reason=reason) for check, statistic in STRUCTURE_CHECKS]
    bad = int((~torch.isfinite(out)).flatten(2).any(2).sum())
    if bad:
        reason = f"{bad} of {out.shape[0] * out.shape[1]} samples hold NaN or infinite outputs for an all-ones input"
        return [
            CheckResult(check, CASE.label, statistic, expected="finite", observed="NaN/inf", verdict=Verdict.FAIL, reason=reason)
            for check, statistic in STRUCTURE_CHECKS
        ]
    dropped = out == 0
    counts = dropped.sum(dim=(3, 4)).double().numpy()  # (calls, batch, channels)
    contract = impl.dropblock_contract
    shared_channels = contract.mask is spec.MaskSharing.SHARED
    checks = []
    if shared_channels:
        differ = int((dropped != dropped[:, :, :1]).flatten(2).any(2).sum())
        checks.append(_exact_sharing_check("independence.channels", differ, calls * STRUCTURE_BATCH, "samples have different masks across channels", "mask=shared"))
    else:
        first = counts[:, 0]  # (calls, channels): independent pairs whatever the batch shares
        checks.append(
            _correlation_check("independence.channels", "r", first[:, 0::2].ravel(), first[:, 1::2].ravel(), "channels", contract)
        )
    if contract.batch is spec.BatchSharing.SHARED:
        differ = int((dropped != dropped[:, :1]).flatten(2).any(2).sum())
        checks.append(_exact_sharing_check("independence.samples", differ, calls * STRUCTURE_BATCH, "samples differ from the first of their call", "batch=shared"))
    else:
        pairs = counts[:, : STRUCTURE_BATCH - 1, 0]
        checks.append(_correlation_check("independence.samples", "r", pairs[:, 0::2].ravel(), pairs[:, 1::2].ravel(), "samples", contract))
    channels_used = 1 if shared_channels else CHANNELS
    firsts = counts[:, 0, :channels_used]  # (calls, channels)
    checks.append(_correlation_check("independence.calls", "r", firsts[0::2].ravel(), firsts[1::2].ravel(), "calls", contract))
    checks.append(_mean_check(contract, out))
    return checks


def _mean_check(contract: spec.Contract, out: torch.Tensor) -> CheckResult:
    """E[output] for input 1: 1 for every normalising contract, 1 - rate for ``none``; a
    t-test over the calls' mean outputs (exact where they do not vary)."""
    rate = spec.expected_drop_rate(contract, CASE.p, CASE.height, CASE.width, CASE.block_size)
    expected = 1.0 - rate if contract.norm is spec.Normalisation.NONE else 1.0
    per_call = out.double().flatten(1).mean(1).numpy()
    observed = float(per_call.mean())
    if np.ptp(per_call) < ROUNDING_SPREAD:  # batch or sample normalisation: exact up to float32 rounding
        p_value = 1.0 if abs(observed - expected) < 1e-4 else 0.0
    else:
        p_value = float(stats.ttest_1samp(per_call, expected).pvalue)
    return CheckResult(
        "normalisation.mean",
        CASE.label,
        "mean out",
        expected=round(expected, 5),
        observed=round(observed, 5),
        p_value=p_value,
        reason=f"mean output {observed:.4f} for an all-ones input where the contract ({contract.norm}) gives {expected:.4f}",
    )


SCALE_TOLERANCE_EPS = 16  # kept units may differ from x * scale by this many float32 epsilons (relative)
GRADIENT_TOLERANCE_EPS = 64  # the gradient may differ from upstream * mask * scale by this many (relative)


def _nonfinite_result(check: str, statistic: str, tensor: torch.Tensor, what: str) -> CheckResult | None:
    """A failed check naming NaN/inf in ``tensor``, or None when it is finite."""
    bad = int((~torch.isfinite(tensor)).sum())
    if not bad:
        return None
    return CheckResult(check, CASE.label, statistic, "finite", "NaN/inf", verdict=Verdict.FAIL, reason=f"{bad} NaN or infinite {what} from a finite input")


def scale_check(impl: Implementation, fn: DropBlockFn, seed: int, device: str) -> CheckResult:
    """Kept units are x times the contract's scale (batch, sample, expected or none), within
    :data:`SCALE_TOLERANCE_EPS` float32 epsilons."""
    tolerance = SCALE_TOLERANCE_EPS * torch.finfo(torch.float32).eps
    statistic = f"out/x (tol {SCALE_TOLERANCE_EPS} eps fp32)"

    def body() -> CheckResult:
        generator = torch.Generator().manual_seed(derive_seed(seed, "scale-input"))
        x = (torch.rand((SCALE_SAMPLES, CHANNELS, CASE.height, CASE.width), generator=generator) + 0.5).to(device)
        out = checked_output(x, _call(impl, fn, x.clone(), derive_seed(seed, "scale"))).detach().double().cpu()
        nonfinite = _nonfinite_result("normalisation.scale", statistic, out, "outputs")
        if nonfinite is not None:
            return nonfinite
        x64 = x.double().cpu()
        dropped = out == 0
        scale = spec.normalisation_scale(impl.dropblock_contract, dropped, CASE.p, CASE.block_size).double()
        expected = torch.where(dropped, 0.0, x64 * scale)
        kept = ~dropped
        error = ((out - expected).abs() / expected.abs().clamp_min(1e-30))[kept]
        worst = float(error.max()) if error.numel() else 0.0
        observed_scale = (out / x64)[kept]
        shown = f"{scale.min().item():.5f}" if scale.numel() == 1 else f"{scale.min().item():.4f}..{scale.max().item():.4f}"
        low, high = (f"{v:.5f}" for v in (observed_scale.min().item(), observed_scale.max().item())) if observed_scale.numel() else ("-", "-")
        seen = low if low == high else f"{low}..{high}"
        ok = worst <= tolerance
        return CheckResult(
            "normalisation.scale",
            CASE.label,
            statistic,
            expected=shown,
            observed=seen,
            verdict=Verdict.PASS if ok else Verdict.FAIL,
            reason="" if ok else f"kept units are scaled by {seen} where the contract's {impl.dropblock_contract.norm} normalisation gives {shown}",
        )

    return guarded("normalisation.scale", CASE.label, statistic, body)


def gradient_check(impl: Implementation, fn: DropBlockFn, seed: int, device: str) -> CheckResult:
    """d/dx of (out * g).sum() equals g times the forward's multiplier (mask * scale), within
    :data:`GRADIENT_TOLERANCE_EPS` float32 epsilons of the largest gradient."""
    statistic = f"max error (tol {GRADIENT_TOLERANCE_EPS} eps fp32)"
    if not impl.supports_backward:
        return CheckResult("gradient", CASE.label, statistic, verdict=Verdict.SKIP, reason="declares no backward support")

    def body() -> CheckResult:
        generator = torch.Generator().manual_seed(derive_seed(seed, "grad-input"))
        shape = (SCALE_SAMPLES, CHANNELS, CASE.height, CASE.width)
        x = (torch.rand(shape, generator=generator) + 0.5).to(device).requires_grad_()
        upstream = torch.randn(shape, generator=generator).to(device)
        out = checked_output(x, _call(impl, fn, x, derive_seed(seed, "grad")))
        if not out.requires_grad:
            return CheckResult(
                "gradient", CASE.label, statistic, verdict=Verdict.FAIL, reason="output is not connected to the input's graph"
            )
        (out * upstream).sum().backward()
        if x.grad is None:
            return CheckResult("gradient", CASE.label, statistic, verdict=Verdict.FAIL, reason="no gradient reached the input")
        for tensor, what in ((out.detach(), "outputs"), (x.grad, "gradients")):
            nonfinite = _nonfinite_result("gradient", statistic, tensor, what)
            if nonfinite is not None:
                return nonfinite
        expected = (upstream * out / x).detach()
        error = float((x.grad - expected).abs().max())
        tolerance = GRADIENT_TOLERANCE_EPS * torch.finfo(torch.float32).eps * max(1.0, float(expected.abs().max()))
        ok = error <= tolerance
        return CheckResult(
            "gradient",
            CASE.label,
            statistic,
            expected=0.0,
            observed=f"{error:.2e}",
            verdict=Verdict.PASS if ok else Verdict.FAIL,
            reason="" if ok else f"gradient differs from upstream * mask * scale by up to {error:.3g} (tolerance {tolerance:.2g})",
        )

    return guarded("gradient", CASE.label, statistic, body)


def half_precision_checks(impl: Implementation, fn: DropBlockFn, seed: int, device: str) -> list[CheckResult]:
    """float16 and bfloat16: dtype kept, finite, and right with more than 65,504 kept units."""
    label = "x".join(map(str, HALF_SHAPE)) + " k=7 p=0.1"
    results = []
    for dtype_name in ("float16", "bfloat16"):
        check = f"dtype.{dtype_name}"
        statistic = f"rel. error (tol {HALF_TOLERANCE_EPS} eps {dtype_name})"
        if dtype_name not in impl.dtypes:
            results.append(CheckResult(check, label, statistic, verdict=Verdict.SKIP, reason=f"declares no {dtype_name} support"))
            continue

        def body(dtype_name: str = dtype_name, check: str = check, statistic: str = statistic) -> CheckResult:
            dtype = getattr(torch, dtype_name)
            x = torch.ones(HALF_SHAPE, dtype=dtype, device=device)
            out = call_seeded(impl, fn, x, 0.1, 7, derive_seed(seed, check))
            if out.dtype != dtype:
                return CheckResult(check, label, statistic, str(dtype), str(out.dtype), verdict=Verdict.FAIL, reason=f"returned {out.dtype} for {dtype} input")
            out64 = out.double().cpu()
            if not bool(torch.isfinite(out64).all()):
                return CheckResult(check, label, statistic, "finite", "NaN/inf", verdict=Verdict.FAIL, reason="non-finite outputs (a count overflowed?)")
            dropped = out64 == 0
            if bool(dropped.all()):
                return CheckResult(
                    check, label, statistic, "some kept", "all zero", verdict=Verdict.FAIL, reason="every unit is zero: the kept count overflowed half precision?"
                )
            scale = spec.normalisation_scale(impl.dropblock_contract, dropped, 0.1, 7).double()
            relative = ((out64 - scale).abs() / scale)[~dropped]
            worst = float(relative.max())
            tolerance = HALF_TOLERANCE_EPS * torch.finfo(dtype).eps
            ok = worst <= tolerance
            return CheckResult(
                check,
                label,
                statistic,
                expected=f"<= {tolerance:.1e}",
                observed=f"{worst:.1e}",
                verdict=Verdict.PASS if ok else Verdict.FAIL,
                reason="" if ok else f"kept units off the scale by {worst:.2g} (tolerance {tolerance:.2g})",
            )

        results.append(guarded(check, label, statistic, body))
    return results
