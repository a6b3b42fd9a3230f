"""``dbench verify`` for the families beside DropBlock2d: DropBlock3d, DropPath, SpatialDropout
and Cutout. Returns an :class:`~.results.ImplementationReport`; no printing.

Each implementation is judged against its own contract's exact law (:mod:`.family_laws`). The
input is positive (uniform on [1, 2)), so an element is dropped exactly when its output is 0.

* **API** (exact): shape, dtype and device kept; input not mutated; eval mode is ``x`` times the
  contract's eval factor; p = 0 returns ``x``; p = 1 gives zeros (a warning otherwise, NaN
  fails); reproducible from a generator; in place writes into ``x``.
* **rate** (z-test per case): the mean dropped fraction over calls against the exact one,
  divided by the larger of the exact and the measured standard error.
* **dispersion** (per case, where the contract makes several draws a call): the variance of a
  call's dropped fraction against the exact variance (an asymptotic z-test on the sample
  variance, with its fourth moment measured): dependent draws within a call show here.
* **position** (per case): each position's drop frequency against its exact probability
  (exact binomial tails, Bonferroni over positions): a rule that depends on where a unit is.
* **structure** (exact, per case): what defines the family: whole rows, batches or maps,
  squares shared by an image's channels, whole k x k x k blocks.
* **independence** (first case): values the contract draws independently, in pairs of samples
  and pairs of a sample's channels within a call (Pearson r), and consecutive calls' dropped
  fractions.
* **normalisation** (exact): kept elements multiplied by the contract's factor.
* **gradient** (exact): the gradient is the same linear map as the forward.
* **dtype** (float16, bfloat16): the rate test and normalisation in half precision.
* **variance shift** (note): ``Var(train) / Var(eval)`` for unit-variance input, from the
  contract: how a following BatchNorm's statistics are off at eval time.

Statistical tests are corrected together (Holm, family-wise ``alpha``); sample sizes come from
:mod:`.family_settings`'s power rule.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from scipy import stats

from dropblock_bench.families.catalog import contract_fields
from dropblock_bench.registry import Implementation
from dropblock_bench.verify.checks_api import describe_exception, guarded, load_failure
from dropblock_bench.verify.family_laws import CaseLaw, FamilyCase, case_law
from dropblock_bench.verify.family_settings import HALF_CASES, FamilySettings
from dropblock_bench.verify.results import CheckResult, ImplementationReport, Verdict, apply_holm
from dropblock_bench.verify.sampling import call_with_seed, checked_output, derive_seed

__all__ = ["count_family_steps", "verify_family_implementation"]

ProgressCallback = Callable[[str], None]
HALF_TOLERANCE = {torch.float16: 2.0**-9, torch.bfloat16: 2.0**-6}
"""Relative error allowed on a kept element in half precision (a few roundings)."""
FLOAT_TOLERANCE = 1e-5
EXACT_CALLS = 32
"""Calls of each case whose structure and normalisation are checked exactly."""


def count_family_steps(impl: Implementation, settings: FamilySettings) -> int:
    """Steps :func:`verify_family_implementation` reports through its progress callback."""
    return 1 + len(settings.cases(impl.family)) + 2


def _input(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Uniform on [1, 2): positive, so zeros of the output are exactly the dropped elements."""
    generator = torch.Generator().manual_seed(seed)
    return (1.0 + torch.rand(shape, generator=generator, dtype=torch.float64)).to(dtype)


def _call(impl: Implementation, fn: Any, x: torch.Tensor, arguments: tuple[float | int, ...], seed: int,
          **kwargs: Any) -> torch.Tensor:  # fmt: skip
    """``fn(x, *arguments)``, reproducible from ``seed``, checked to be a tensor of ``x``'s shape."""
    return checked_output(x, call_with_seed(impl, fn, x, arguments, seed, **kwargs))


def _exact(check: str, case: str, statistic: str, problem: str | None, expected: object = None, observed: object = None,
           *, warn: bool = False) -> CheckResult:  # fmt: skip
    verdict = Verdict.PASS if problem is None else (Verdict.WARN if warn else Verdict.FAIL)
    return CheckResult(check, case, statistic, expected, observed, verdict=verdict, reason=problem or "")


# --------------------------------------------------------------------------- API


def _p_argument(impl: Implementation, case: FamilyCase, p: float) -> tuple[float | int, ...] | None:
    """The case's arguments with ``p`` in place of its drop probability (None for Cutout)."""
    return None if impl.family == "cutout" else (p, *case.arguments[1:])


def api_checks(impl: Implementation, fn: Any, case: FamilyCase, law: CaseLaw, seed: int) -> list[CheckResult]:
    """Shape, mutation, eval, p = 0, p = 1, seeding and in place, each guarded on its own."""
    label = case.label
    x = _input(case.shape, derive_seed(seed, "api"))

    def shape() -> CheckResult:
        out = _call(impl, fn, x.clone(), case.arguments, 1)
        problem = None if out.dtype == x.dtype and out.device == x.device else f"returned {out.dtype} on {out.device}"
        return _exact("api.shape", label, "shape, dtype, device", problem)

    def mutation() -> CheckResult:
        copy = x.clone()
        _call(impl, fn, copy, case.arguments, 2)
        return _exact("api.mutation", label, "input unchanged", None if torch.equal(copy, x) else "the input was modified")

    def eval_mode() -> CheckResult:
        if not impl.supports_training:
            return CheckResult("api.eval", label, "eval output", verdict=Verdict.SKIP, reason="takes no training argument")
        out = _call(impl, fn, x.clone(), case.arguments, 3, training=False)
        expected = x.double() * law.eval_factor
        error = float(((out.double() - expected).abs() / expected.abs()).max())
        problem = None if error <= FLOAT_TOLERANCE else f"eval mode is not x * {law.eval_factor:g}: off by up to {error:.3g} (relative)"
        return _exact("api.eval", label, "eval output", problem, f"x * {law.eval_factor:g}")

    def p_zero() -> CheckResult:
        arguments = _p_argument(impl, case, 0.0)
        if arguments is None:
            return CheckResult("api.p0", label, "identity", verdict=Verdict.SKIP, reason="Cutout has no drop probability")
        out = _call(impl, fn, x.clone(), arguments, 4)
        return _exact("api.p0", label, "identity", None if torch.equal(out, x) else "p = 0 changed the input's values")

    def p_one() -> CheckResult:
        arguments = _p_argument(impl, case, 1.0)
        if arguments is None:
            return CheckResult("api.p1", label, "zeros", verdict=Verdict.SKIP, reason="Cutout has no drop probability")
        out = _call(impl, fn, x.clone(), arguments, 5)
        if not bool(torch.isfinite(out).all()):
            return _exact("api.p1", label, "zeros", "p = 1 gave NaN or inf")
        return _exact("api.p1", label, "zeros", None if not bool(out.any()) else "p = 1 left non-zero elements", warn=True)

    def seeding() -> CheckResult:
        if not impl.supports_generator:
            return CheckResult("api.seeding", label, "reproducible", verdict=Verdict.SKIP, reason="takes no generator")
        first, again = (_call(impl, fn, x.clone(), case.arguments, 6) for _ in range(2))
        return _exact("api.seeding", label, "reproducible", None if torch.equal(first, again) else "the same generator seed gave another output")

    def inplace() -> CheckResult:
        if not impl.supports_inplace:
            return CheckResult("api.inplace", label, "writes into x", verdict=Verdict.SKIP, reason="declares no in-place mode")
        target = x.clone()
        out = _call(impl, fn, target, case.arguments, 7, inplace=True)
        reference = _call(impl, fn, x.clone(), case.arguments, 7) if impl.supports_generator else out
        problem = None
        if out.data_ptr() != target.data_ptr() or not torch.equal(target, out):
            problem = "inplace=True did not write the result into x"
        elif not torch.equal(out, reference):
            problem = "inplace=True gave another result than out of place with the same seed"
        return _exact("api.inplace", label, "writes into x", problem)

    checks = [shape, mutation, eval_mode, p_zero, p_one, seeding, inplace]
    names = ["api.shape", "api.mutation", "api.eval", "api.p0", "api.p1", "api.seeding", "api.inplace"]
    return [guarded(name, label, "-", check) for name, check in zip(names, checks)]


# --------------------------------------------------------------------------- law


class _Sample:
    """What one case's calls showed."""

    def __init__(self, law: CaseLaw) -> None:
        self.fractions: list[float] = []
        self.position_counts = torch.zeros_like(law.position_probabilities)
        self.replicates = 0
        self.values: list[torch.Tensor] = []
        self.structure: str | None = None
        self.normalisation: tuple[float, float, float] | None = None  # worst (error, observed, expected)


def _kept_error(out: torch.Tensor, x: torch.Tensor, dropped: torch.Tensor, law: CaseLaw) -> tuple[float, float, float]:
    """The worst relative error of a kept element's factor ``out / x`` against the contract's."""
    factor = (out.double() / x.double())
    expected = law.kept_factor(dropped).expand_as(factor)
    kept = ~dropped
    if not bool(kept.any()):
        return 0.0, 0.0, 0.0
    error = ((factor - expected).abs() / expected.abs().clamp(min=1e-300))[kept]
    worst = int(error.argmax())
    return float(error[worst]), float(factor[kept][worst]), float(expected[kept][worst])


def sample_case(impl: Implementation, fn: Any, case: FamilyCase, law: CaseLaw, calls: int, seed: int,
                dtype: torch.dtype = torch.float32) -> _Sample:  # fmt: skip
    """``calls`` calls, each with its own seed, on four positive inputs in turn. Structure and
    normalisation (exact) are read in the first :data:`EXACT_CALLS` calls: a defect showing in
    one call of five shows there with probability 1 - 0.8**32 > 0.999."""
    sample = _Sample(law)
    inputs = [_input(case.shape, derive_seed(seed, case.label, str(dtype), "x", index), dtype) for index in range(4)]
    for call in range(calls):
        x = inputs[call % 4]
        out = _call(impl, fn, x.clone(), case.arguments, derive_seed(seed, case.label, str(dtype), call))
        dropped = out == 0
        sample.fractions.append(float(dropped.double().mean()))
        replicates = law.replicates(dropped)
        sample.position_counts += replicates.sum(dim=0)
        sample.replicates += replicates.shape[0]
        sample.values.append(law.independent_values(dropped))
        if call >= EXACT_CALLS:
            continue
        if not bool(torch.isfinite(out).all()):
            raise ValueError("returned NaN or inf from a finite input")
        if sample.structure is None:
            sample.structure = law.structure_problem(dropped)
        error = _kept_error(out, x, dropped, law)
        if sample.normalisation is None or error[0] > sample.normalisation[0]:
            sample.normalisation = error
    return sample


def rate_check(check: str, label: str, law: CaseLaw, fractions: list[float]) -> CheckResult:
    """The mean dropped fraction against the exact one (z-test, the larger standard error)."""
    count = len(fractions)
    mean = math.fsum(fractions) / count
    measured = math.sqrt(math.fsum((f - mean) ** 2 for f in fractions) / max(count - 1, 1) / count)
    se = max(math.sqrt(law.rate_variance / count), measured)
    if se == 0.0:
        p_value = 1.0 if mean == law.expected_rate else 0.0
    else:
        p_value = float(2 * stats.norm.sf(abs(mean - law.expected_rate) / se))
    reason = f"drops {mean:.4f} of the elements on average where its contract drops {law.expected_rate:.4f} ({mean / law.expected_rate - 1:+.1%})" if law.expected_rate else ""
    return CheckResult(check, label, "mean dropped fraction", round(law.expected_rate, 6), round(mean, 6), p_value, reason=reason)


def dispersion_check(label: str, law: CaseLaw, fractions: list[float], several_draws: bool) -> CheckResult:
    """The variance of a call's dropped fraction against the exact one (asymptotic z on s²)."""
    if not several_draws or law.rate_variance <= 0.0:
        return CheckResult("dispersion", label, "variance", verdict=Verdict.SKIP, reason="one draw a call: the rate check covers it")
    count = len(fractions)
    mean = math.fsum(fractions) / count
    deviations = [f - mean for f in fractions]
    variance = math.fsum(d * d for d in deviations) / (count - 1)
    fourth = math.fsum(d**4 for d in deviations) / count
    spread = math.sqrt(max(fourth - variance**2, 0.0) / count)
    expected = law.rate_variance
    if spread == 0.0:
        p_value = 1.0 if variance == expected else 0.0
    else:
        p_value = float(2 * stats.norm.sf(abs(variance - expected) / spread))
    ratio = variance / expected
    reason = f"calls' dropped fractions vary {math.sqrt(ratio):.2f}x as much as its contract's (sd {math.sqrt(variance):.3g} vs {math.sqrt(expected):.3g}): draws within a call are not independent as declared"
    return CheckResult("dispersion", label, "sd of a call's dropped fraction", round(math.sqrt(expected), 6), round(math.sqrt(variance), 6),
                       p_value, reason=reason)  # fmt: skip


def position_check(label: str, law: CaseLaw, sample: _Sample) -> CheckResult:
    """Each position's drop count against Binomial(replicates, its exact probability)."""
    trials = sample.replicates
    expected = law.position_probabilities
    counts = sample.position_counts.round()
    lower = stats.binom.cdf(counts.numpy(), trials, expected.numpy())
    upper = stats.binom.sf(counts.numpy() - 1, trials, expected.numpy())
    tails = 2 * torch.minimum(torch.as_tensor(lower), torch.as_tensor(upper))
    worst = int(tails.argmin())
    p_value = float(min(1.0, float(tails[worst]) * expected.numel()))
    frequency = float(counts[worst]) / trials
    reason = f"position {worst} is dropped {frequency:.4f} of the time where its contract says {float(expected[worst]):.4f}"
    return CheckResult("position", label, "worst position's drop frequency", round(float(expected[worst]), 6), round(frequency, 6),
                       p_value, reason=reason)  # fmt: skip


def _pearson(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float] | None:
    """Pearson r and its two-sided p-value (r sqrt(n) ~ N(0, 1) under independence); None
    when either side does not vary."""
    a, b = a - a.mean(), b - b.mean()
    denominator = float(a.norm() * b.norm())
    if denominator == 0.0:
        return None
    r = float((a * b).sum()) / denominator
    return r, float(2 * stats.norm.sf(abs(r) * math.sqrt(a.numel())))


def independence_checks(label: str, sample: _Sample, several_outcomes: bool) -> list[CheckResult]:
    """Pearson r of values the contract draws independently: pairs of samples (each sample's
    mean over its units), pairs of channels (each channel's mean over the samples), and the same
    calls' dropped fractions in consecutive calls. Averaging over the other axis keeps a
    dependence along it from passing for evidence along this one."""
    values = sample.values
    samples, units = values[0].shape
    checks = []
    for check, count, axis, what in (("independence.samples", samples, 1, "samples' draws within a call"),
                                     ("independence.channels", units, 0, "a sample's channels' draws")):  # fmt: skip
        if count < 2:
            checks.append(CheckResult(check, label, "r", verdict=Verdict.SKIP, reason=f"one draw a {'batch' if axis else 'sample'}"))
            continue
        # One value per sample (its mean over channels), or per channel (its mean over samples):
        # a dependence along the other axis cannot pass for evidence along this one.
        means = [v.mean(dim=axis) for v in values]
        result = _pearson(torch.cat([m[0 : count - 1 : 2] for m in means]), torch.cat([m[1::2] for m in means]))
        checks.append(_correlation(check, label, result, what))
    checks.append(_calls_check(label, sample.fractions, several_outcomes))
    return checks


def _calls_check(label: str, fractions: list[float], several_outcomes: bool) -> CheckResult:
    """Consecutive calls' dropped fractions (one value a call, so no dependence within a call
    inflates the evidence): correlated, or all equal where the contract says they vary."""
    series = torch.tensor(fractions, dtype=torch.float64)
    result = _pearson(series[:-1], series[1:])
    if result is None and several_outcomes:
        return CheckResult("independence.calls", label, "r", 0.0, None, 0.0,
                           reason="every call dropped the same fraction: calls are not independent draws")  # fmt: skip
    return _correlation("independence.calls", label, result, "consecutive calls' dropped fractions")


def _correlation(check: str, label: str, result: tuple[float, float] | None, what: str) -> CheckResult:
    if result is None:
        return CheckResult(check, label, "r", 0.0, None, 1.0, reason="")
    r, p_value = result
    return CheckResult(check, label, "r", 0.0, round(r, 4), p_value, reason=f"{what} are correlated (r = {r:.3f})")


def structure_check(label: str, problem: str | None) -> CheckResult:
    return _exact("structure", label, "every call", problem)


def normalisation_check(label: str, sample: _Sample, tolerance: float, check: str = "normalisation") -> CheckResult:
    error, observed, expected = sample.normalisation or (0.0, 0.0, 0.0)
    problem = None if error <= tolerance else f"kept elements are multiplied by {observed:.6g} where its contract says {expected:.6g}"
    return _exact(check, label, "kept factor", problem, round(expected, 6), round(observed, 6))


def gradient_check(impl: Implementation, fn: Any, case: FamilyCase, seed: int) -> CheckResult:
    """d(sum(out * w))/dx equals w * out / x: the gradient is the forward's linear map."""
    if not impl.supports_backward:
        return CheckResult("gradient", case.label, "d/dx", verdict=Verdict.SKIP, reason="declares no backward")

    def body() -> CheckResult:
        x = _input(case.shape, derive_seed(seed, "gradient")).requires_grad_()
        out = _call(impl, fn, x, case.arguments, derive_seed(seed, "gradient", "call"))
        weights = torch.randn(case.shape, generator=torch.Generator().manual_seed(derive_seed(seed, "weights")))
        (grad,) = torch.autograd.grad((out * weights).sum(), x)
        expected = weights.double() * out.detach().double() / x.detach().double()
        error = float((grad.double() - expected).abs().max() / expected.abs().max().clamp(min=1e-300))
        problem = None if error <= FLOAT_TOLERANCE else f"the gradient is not the forward's mask and scale (off by {error:.3g} relative)"
        return _exact("gradient", case.label, "d/dx", problem)

    return guarded("gradient", case.label, "d/dx", body)


# --------------------------------------------------------------------------- the run


def verify_family_implementation(impl: Implementation, settings: FamilySettings | None = None,
                                 progress: ProgressCallback | None = None) -> ImplementationReport:  # fmt: skip
    """Judge ``impl`` (not DropBlock2d: see :func:`.engine.verify_implementation`) against its
    declared contract; return every check with its verdict."""
    settings = settings or FamilySettings()
    step = progress or (lambda description: None)
    started = time.perf_counter()
    family = impl.family
    report = ImplementationReport(
        implementation=impl.name, contract=contract_fields(impl.contract), departures_from_paper=impl.departures(), checks=[],
        family=family, reference=impl.family_record.reference_name,
    )  # fmt: skip
    if settings.quick:
        report.notes.append("quick mode: fewer cases and calls, so less power")
    cases = settings.cases(family)
    unavailable = None if "cpu" in impl.devices else f"runs on {', '.join(impl.devices)}; the family verifier runs on the CPU"
    fn, failure = load_failure(impl, unavailable)
    if fn is None:
        report.checks += [failure] if failure else []
        report.duration_s = time.perf_counter() - started
        return report

    laws = [case_law(family, impl.contract, case) for case in cases]
    for departure in impl.departures():
        report.checks.append(CheckResult(f"contract.{departure}", "-", "contract", verdict=Verdict.NOTE,
                                         reason=f"{departure}={contract_fields(impl.contract)[departure]}"
                                                f" (the reference, {impl.family_record.reference_name}:"
                                                f" {contract_fields(impl.family_record.reference_contract)[departure]})"))  # fmt: skip
    for case, law in zip(cases, laws):
        shift = "" if law.variance_shift_exact else " (large-input limit)"
        report.checks.append(CheckResult("variance-shift", case.label, "Var(train) / Var(eval)", observed=round(law.variance_shift, 4),
                                         verdict=Verdict.NOTE,
                                         reason=f"training output's variance is {law.variance_shift:.3f}x eval's for unit-variance"
                                                f" input{shift}: a BatchNorm after it sees {1 / law.variance_shift:.3f}x its"
                                                " training variance at eval time" if law.variance_shift else ""))  # fmt: skip

    step("API")
    report.checks += api_checks(impl, fn, cases[0], laws[0], settings.seed)
    weakest = 1.0
    for index, (case, law) in enumerate(zip(cases, laws)):
        step(f"law {case.label}")
        calls = settings.calls_for(family, law)
        weakest = min(weakest, settings.power_reached(family, law, calls))
        try:
            sample = sample_case(impl, fn, case, law, calls, settings.seed)
        except Exception as exc:  # noqa: BLE001 - the implementation's failure is the finding
            reason = describe_exception(exc)
            report.checks += [CheckResult(name, case.label, "-", verdict=Verdict.FAIL, reason=reason)
                              for name in ("rate", "structure", "normalisation")]  # fmt: skip
            continue
        several = sample.values[0].numel() > 1
        report.checks += [
            rate_check("rate", case.label, law, sample.fractions),
            dispersion_check(case.label, law, sample.fractions, several),
            position_check(case.label, law, sample),
            structure_check(case.label, sample.structure),
            normalisation_check(case.label, sample, FLOAT_TOLERANCE),
        ]
        if index == 0:
            report.checks += independence_checks(case.label, sample, law.rate_variance > 0.0)
    step("gradient")
    report.checks.append(gradient_check(impl, fn, cases[0], settings.seed))
    step("half precision")
    report.checks += _half_checks(impl, fn, settings)
    apply_holm(report.checks, settings.alpha)
    report.notes.append(
        f"power: a {settings.relative_error:.0%} error in the dropped fraction is caught with probability >= {weakest:.3f}"
        f" in every case; false alarms <= {settings.alpha:g} (Holm)"
    )
    report.duration_s = time.perf_counter() - started
    return report


def _half_checks(impl: Implementation, fn: Any, settings: FamilySettings) -> list[CheckResult]:
    """The rate test and normalisation of the half-precision case, in float16 and bfloat16."""
    case = HALF_CASES[impl.family]
    law = case_law(impl.family, impl.contract, case)
    checks = []
    for dtype in (torch.float16, torch.bfloat16):
        name = str(dtype).removeprefix("torch.")
        check = f"dtype.{name}"
        label = f"{case.label} {name}"
        if name not in impl.dtypes:
            checks.append(CheckResult(check, label, "-", verdict=Verdict.SKIP, reason=f"declares no {name} support"))
            continue
        try:
            sample = sample_case(impl, fn, case, law, settings.calls_for(impl.family, law), settings.seed, dtype)
        except Exception as exc:  # noqa: BLE001 - the implementation's failure is the finding
            checks.append(CheckResult(check, label, "-", verdict=Verdict.FAIL, reason=describe_exception(exc)))
            continue
        checks.append(rate_check(check, label, law, sample.fractions))
        checks.append(normalisation_check(label, sample, HALF_TOLERANCE[dtype], check=f"{check}.normalisation"))
    return checks
