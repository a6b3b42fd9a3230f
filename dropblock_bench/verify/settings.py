"""What ``dbench verify`` samples, and how much: the case grid and power-based sample sizes.

Sample sizes are chosen for power, from the exact math. For each case the number of
independent maps ``M`` is the smallest for which the drop-rate z-test, run at the
Bonferroni level ``alpha / m`` (``m`` statistical tests per implementation, a lower bound
on what Holm's procedure grants), catches a relative error of ``relative_error`` in the
drop rate with probability ``power``:

    M = ((z[1 - alpha / 2m] + z[power]) * sd / (relative_error * rate)) ** 2

where ``rate`` and ``sd`` (the standard deviation of one map's drop rate) are exact under
the implementation's contract (:func:`dropblock_bench.spec.drop_count_variance`). ``M`` is
clamped to ``[min_maps, max_maps]``; where the cap binds, the report states the power
actually reached. Defaults: ``alpha = 0.01`` family-wise (Holm over every p-value of one
implementation), 10 % relative error, power 0.99.
"""

from __future__ import annotations

import dataclasses
import math

from scipy import stats

from dropblock_bench import spec


@dataclasses.dataclass(frozen=True)
class Case:
    """One map geometry and drop probability: (H, W), block size k, p."""

    height: int
    width: int
    block_size: int
    p: float

    @property
    def label(self) -> str:
        return f"{self.height}x{self.width} k={self.block_size} p={self.p:g}"


DEFAULT_CASES: tuple[Case, ...] = (
    Case(14, 14, 7, 0.1),  # a ResNet stage-4 map: where timm's default drops 21 % for 10 %
    Case(7, 7, 7, 0.1),  # block = map
    Case(9, 13, 4, 0.3),  # even block, H != W
    Case(13, 8, 2, 0.05),  # even block, H > W, small p
    Case(5, 9, 7, 0.2),  # block larger than the map's height
    Case(28, 28, 7, 0.1),
    Case(16, 16, 3, 0.5),  # large p
)
QUICK_CASES: tuple[Case, ...] = (Case(14, 14, 7, 0.1), Case(9, 13, 4, 0.3), Case(5, 9, 7, 0.2))
STRUCTURE_CASE = Case(12, 10, 3, 0.3)
"""Where independence, normalisation and gradients are checked (H != W, moderate p)."""

INDEPENDENCE_TESTS = 3  # across channels, samples and calls
MEAN_TESTS = 1  # normalisation: mean preserved


@dataclasses.dataclass(frozen=True)
class VerifySettings:
    """Knobs of one verification run; see the module docstring for the power rule."""

    seed: int = 0
    alpha: float = 0.01
    relative_error: float = 0.10
    power: float = 0.99
    cases: tuple[Case, ...] = DEFAULT_CASES
    min_maps: int = 2_000
    max_maps: int = 150_000
    structure_samples: int = 2_000
    quick: bool = False

    @classmethod
    def for_mode(cls, *, quick: bool = False, seed: int = 0) -> VerifySettings:
        """The default settings, or the quick ones (fewer cases, power 0.5, smaller samples)."""
        if not quick:
            return cls(seed=seed)
        return cls(
            seed=seed, power=0.5, cases=QUICK_CASES, min_maps=500, max_maps=20_000, structure_samples=600, quick=True
        )

    @property
    def n_statistical_tests(self) -> int:
        """Statistical tests per implementation: rate, dispersion and position per case, plus
        independence and mean preservation."""
        return 3 * len(self.cases) + INDEPENDENCE_TESTS + MEAN_TESTS

    @property
    def bonferroni_level(self) -> float:
        return self.alpha / self.n_statistical_tests

    def _rate_and_sd(self, contract: spec.Contract, case: Case) -> tuple[float, float]:
        rate = spec.expected_drop_rate(contract, case.p, case.height, case.width, case.block_size)
        variance = spec.drop_count_variance(contract, case.p, case.height, case.width, case.block_size)
        return rate, math.sqrt(variance) / (case.height * case.width)

    def maps_for(self, contract: spec.Contract, case: Case) -> int:
        """Independent maps to sample for ``case`` (see the module docstring)."""
        rate, sd = self._rate_and_sd(contract, case)
        if rate <= 0.0 or sd <= 0.0:
            return self.min_maps
        z_level = stats.norm.isf(self.bonferroni_level / 2)
        z_power = stats.norm.ppf(self.power)
        needed = ((z_level + z_power) * sd / (self.relative_error * rate)) ** 2
        return int(min(max(math.ceil(needed), self.min_maps), self.max_maps))

    def power_reached(self, contract: spec.Contract, case: Case, maps: int) -> float:
        """Probability that ``maps`` maps reveal a ``relative_error`` error in the rate."""
        rate, sd = self._rate_and_sd(contract, case)
        if sd <= 0.0:
            return 1.0
        shift = self.relative_error * rate / (sd / math.sqrt(maps))
        z_level = stats.norm.isf(self.bonferroni_level / 2)
        return float(stats.norm.cdf(shift - z_level) + stats.norm.cdf(-shift - z_level))
