"""What ``dbench verify`` samples for the families beside DropBlock2d, and how much.

Each family has a grid of cases (:class:`~.family_laws.FamilyCase`: an input shape and the
call's arguments) and a half-precision case. Every statistical test treats the *call* as its
unit; the number of calls of a case is the smallest for which the rate z-test, at the
Bonferroni level ``alpha / m`` (``m`` statistical tests per implementation), catches a relative
error of ``relative_error`` in the expected dropped fraction with probability ``power``:

    K = ((z[1 - alpha / 2m] + z[power]) * sd / (relative_error * rate)) ** 2 * inflation

``sd`` being the exact standard deviation of one call's dropped fraction under the declared
contract, ``inflation = 1 + 1 / sqrt(pi (K_min - 1))`` what dividing by the larger of the exact
and the measured standard error costs. ``K`` is clamped to ``[min_calls, max_calls]``; where the
cap binds, the report states the power reached. Defaults: ``alpha = 0.01`` family-wise (Holm),
10 % relative error, power 0.99.
"""

from __future__ import annotations

import dataclasses
import math

from scipy import stats

from dropblock_bench.verify.family_laws import CaseLaw, FamilyCase

__all__ = ["FAMILY_CASES", "HALF_CASES", "FamilySettings"]

FAMILY_CASES: dict[str, tuple[FamilyCase, ...]] = {
    "drop-path": (
        FamilyCase((256, 16), (0.1,)),  # a ViT token batch, flattened
        FamilyCase((64, 4, 3, 3), (0.3,)),  # a ConvNeXt branch, rank 4
        FamilyCase((1024, 2), (0.02,)),  # small p
        FamilyCase((512,), (0.5,)),  # rank 1, large p
    ),
    "spatial-dropout": (
        FamilyCase((16, 32, 4, 4), (0.1,)),  # (N, C, H, W)
        FamilyCase((8, 16, 3, 3, 3), (0.3,)),  # (N, C, D, H, W)
        FamilyCase((32, 64, 5), (0.05,)),  # (N, C, L)
    ),
    "cutout": (
        FamilyCase((64, 3, 16, 16), (1, 8)),  # CIFAR-like, even patch
        FamilyCase((64, 2, 12, 20), (2, 5)),  # two holes, odd length, H != W
        FamilyCase((64, 1, 9, 9), (1, 12)),  # patch wider than half the image
    ),
    "dropblock3d": (
        FamilyCase((16, 8, 6, 8, 10), (0.1, 3)),  # a block that fits, D != H != W
        FamilyCase((16, 8, 5, 5, 5), (0.2, 7)),  # block larger than the volume
        FamilyCase((8, 8, 8, 8, 8), (0.3, 2)),  # even block
    ),
}
"""Every family's grid; the first case also serves the independence checks."""

HALF_CASES: dict[str, FamilyCase] = {
    "drop-path": FamilyCase((8192, 4), (0.01,)),  # where floor(1 - p + u) in bfloat16 keeps 0.9883
    "spatial-dropout": FamilyCase((64, 128, 2, 2), (0.01,)),
    "cutout": FamilyCase((64, 3, 16, 16), (1, 8)),
    "dropblock3d": FamilyCase((16, 8, 6, 8, 10), (0.1, 3)),
}
"""The case run in float16 and bfloat16 (rate and normalisation)."""

QUICK_CASES = 2
"""Quick mode keeps each grid's first cases."""


@dataclasses.dataclass(frozen=True)
class FamilySettings:
    """Knobs of one family verification (see the module docstring for the power rule)."""

    seed: int = 0
    alpha: float = 0.01
    relative_error: float = 0.10
    power: float = 0.99
    min_calls: int = 100
    max_calls: int = 1_500
    quick: bool = False

    @classmethod
    def for_mode(cls, *, quick: bool = False, seed: int = 0) -> FamilySettings:
        """The default settings, or the quick ones (two cases a family, power 0.5, fewer calls)."""
        return cls(seed=seed, power=0.5, min_calls=60, max_calls=800, quick=True) if quick else cls(seed=seed)

    def cases(self, family: str) -> tuple[FamilyCase, ...]:
        grid = FAMILY_CASES[family]
        return grid[:QUICK_CASES] if self.quick else grid

    def n_statistical_tests(self, family: str) -> int:
        """Rate, dispersion and position per case; three independence tests; rate in two half dtypes."""
        return 3 * len(self.cases(family)) + 3 + 2

    def _z(self, family: str) -> float:
        return float(stats.norm.isf(self.alpha / self.n_statistical_tests(family) / 2))

    @property
    def inflation(self) -> float:
        return 1.0 + 1.0 / math.sqrt(math.pi * max(self.min_calls - 1, 1))

    def calls_for(self, family: str, law: CaseLaw) -> int:
        """Calls to make for a case with this law."""
        sd = math.sqrt(law.rate_variance)
        if law.expected_rate <= 0.0 or sd <= 0.0:
            return self.min_calls
        needed = ((self._z(family) + stats.norm.ppf(self.power)) * sd / (self.relative_error * law.expected_rate)) ** 2
        return int(min(max(math.ceil(needed * self.inflation), self.min_calls), self.max_calls))

    def power_reached(self, family: str, law: CaseLaw, calls: int) -> float:
        """Probability that ``calls`` calls reveal a ``relative_error`` error in the rate."""
        sd = math.sqrt(law.rate_variance)
        if sd <= 0.0:
            return 1.0
        shift = self.relative_error * law.expected_rate / (sd * math.sqrt(self.inflation / calls))
        z = self._z(family)
        return float(stats.norm.cdf(shift - z) + stats.norm.cdf(-shift - z))
