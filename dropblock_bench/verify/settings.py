"""What ``dbench verify`` samples, and how much: the case grid and power-based sample sizes.

Maps come from many separate calls (at least ``min_calls`` per case), and every law check
treats the *call* as its unit of independence: a defect that shows in one call of five is
seen in some call, and maps that one call makes dependent (a mask shared by the whole
batch) cannot pass for independent evidence. The drop-rate test divides by the larger of
the exact standard error (maps independent, as every contract promises within a call) and
the standard error measured between calls.

Sample sizes are chosen for power, from the exact math. For each case the number of maps
``M`` is the smallest for which the drop-rate z-test, run at the Bonferroni level
``alpha / m`` (``m`` statistical tests per implementation, a lower bound on what Holm's
procedure grants), catches a relative error of ``relative_error`` in the drop rate with
probability ``power``:

    M = ((z[1 - alpha / 2m] + z[power]) * sd / (relative_error * rate)) ** 2 * inflation

where ``rate`` and ``sd`` (the standard deviation of one map's drop rate) are exact under
the implementation's contract (:func:`dropblock_bench.spec.drop_count_variance`) and
``inflation = 1 + 1 / sqrt(pi (K - 1))`` bounds what taking the larger of two standard
errors over ``K`` calls costs on average. ``M`` is clamped to ``[min_maps, max_maps]``;
where the cap binds, the report states the power actually reached. Defaults:
``alpha = 0.01`` family-wise (Holm over every p-value of one implementation), 10 % relative
error, power 0.99, in every case of the grid (every p in it is >= 0.01).
"""

from __future__ import annotations

import dataclasses
import enum
import math

from scipy import stats

from dropblock_bench import spec


class Layout(enum.StrEnum):
    """How the input tensor of a case is laid out in memory."""

    CONTIGUOUS = "contiguous"
    CHANNELS_LAST = "channels_last"
    STRIDED = "strided"
    """A non-contiguous view: the transpose of an (N, C, W, H) tensor."""


@dataclasses.dataclass(frozen=True)
class Case:
    """One map geometry, drop probability and input layout: (H, W), block size k, p."""

    height: int
    width: int
    block_size: int
    p: float
    layout: Layout = Layout.CONTIGUOUS

    def __post_init__(self) -> None:
        object.__setattr__(self, "layout", Layout(self.layout))

    @property
    def label(self) -> str:
        base = f"{self.height}x{self.width} k={self.block_size} p={self.p:g}"
        return base if self.layout is Layout.CONTIGUOUS else f"{base} {self.layout}"


DEFAULT_CASES: tuple[Case, ...] = (
    Case(14, 14, 7, 0.1),  # a ResNet stage-4 map: where timm's default drops 21 % for 10 %
    Case(7, 7, 7, 0.1),  # block = map
    Case(9, 13, 4, 0.3),  # even block, H < W
    Case(13, 8, 2, 0.05),  # even block, H > W
    Case(9, 15, 5, 0.2),  # odd block that fits, H < W: a gamma from one side shows here
    Case(15, 9, 3, 0.1),  # odd block that fits, H > W
    Case(5, 9, 7, 0.2),  # block larger than the map's height
    Case(16, 16, 3, 0.5),  # large p
    Case(20, 20, 3, 0.02),  # small p
    Case(32, 48, 7, 0.1),  # a stage-sized map, H != W
    Case(14, 14, 7, 0.1, Layout.CHANNELS_LAST),
    Case(15, 9, 3, 0.1, Layout.CHANNELS_LAST),
    Case(9, 13, 4, 0.3, Layout.STRIDED),
    Case(9, 15, 5, 0.2, Layout.STRIDED),
)
QUICK_CASES: tuple[Case, ...] = (
    Case(14, 14, 7, 0.1),
    Case(9, 13, 4, 0.3),
    Case(15, 9, 3, 0.02),
    Case(5, 9, 7, 0.2, Layout.CHANNELS_LAST),
    Case(9, 15, 5, 0.2, Layout.STRIDED),
)
STRUCTURE_CASE = Case(12, 10, 3, 0.3)
"""Where independence, normalisation and gradients are checked (H != W, moderate p)."""

INDEPENDENCE_TESTS = 3  # across channels, samples and calls
MEAN_TESTS = 1  # normalisation: mean preserved
LAW_TESTS_PER_CASE = 3  # rate, dispersion, position


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
    min_calls: int = 64
    structure_samples: int = 2_000
    quick: bool = False

    @classmethod
    def for_mode(cls, *, quick: bool = False, seed: int = 0) -> VerifySettings:
        """The default settings, or the quick ones (fewer cases, power 0.5, smaller samples)."""
        if not quick:
            return cls(seed=seed)
        return cls(
            seed=seed,
            power=0.5,
            cases=QUICK_CASES,
            min_maps=500,
            max_maps=20_000,
            min_calls=24,
            structure_samples=600,
            quick=True,
        )

    @property
    def n_statistical_tests(self) -> int:
        """Statistical tests per implementation: rate, dispersion and position per case, plus
        independence and mean preservation."""
        return LAW_TESTS_PER_CASE * len(self.cases) + INDEPENDENCE_TESTS + MEAN_TESTS

    @property
    def bonferroni_level(self) -> float:
        return self.alpha / self.n_statistical_tests

    @property
    def variance_inflation(self) -> float:
        """What dividing by the larger of two standard errors costs on average (module docstring)."""
        return 1.0 + 1.0 / math.sqrt(math.pi * max(self.min_calls - 1, 1))

    def intermittent_miss_probability(self, share: float = 0.2) -> float:
        """Chance that a defect showing in a fraction ``share`` of calls shows in none of one
        case's ``min_calls`` calls (the grid's other cases only lower it)."""
        return (1.0 - share) ** self.min_calls

    def _rate_and_sd(self, contract: spec.Contract, case: Case) -> tuple[float, float]:
        rate = spec.expected_drop_rate(contract, case.p, case.height, case.width, case.block_size)
        variance = spec.drop_count_variance(contract, case.p, case.height, case.width, case.block_size)
        return rate, math.sqrt(variance) / (case.height * case.width)

    def maps_for(self, contract: spec.Contract, case: Case) -> int:
        """Maps to sample for ``case`` (see the module docstring)."""
        rate, sd = self._rate_and_sd(contract, case)
        if rate <= 0.0 or sd <= 0.0:
            return self.min_maps
        z_level = stats.norm.isf(self.bonferroni_level / 2)
        z_power = stats.norm.ppf(self.power)
        needed = ((z_level + z_power) * sd / (self.relative_error * rate)) ** 2 * self.variance_inflation
        return int(min(max(math.ceil(needed), self.min_maps), self.max_maps))

    def power_reached(self, contract: spec.Contract, case: Case, maps: int) -> float:
        """Probability that ``maps`` maps reveal a ``relative_error`` error in the rate."""
        rate, sd = self._rate_and_sd(contract, case)
        if sd <= 0.0:
            return 1.0
        shift = self.relative_error * rate / (sd * math.sqrt(self.variance_inflation / maps))
        z_level = stats.norm.isf(self.bonferroni_level / 2)
        return float(stats.norm.cdf(shift - z_level) + stats.norm.cdf(-shift - z_level))
