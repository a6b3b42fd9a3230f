"""Sample sizes: as many maps as the documented power needs, within the bounds."""

from __future__ import annotations

import pytest

from dropblock_bench import spec
from dropblock_bench.verify import VerifySettings
from dropblock_bench.verify.settings import DEFAULT_CASES

DEFAULT = VerifySettings()


@pytest.mark.parametrize("case", DEFAULT_CASES, ids=[c.label for c in DEFAULT_CASES])
def test_sample_sizes_reach_the_documented_power(case):
    for contract in (spec.PAPER_CONTRACT, spec.Contract(mask="shared", seeds="anywhere", gamma="naive")):
        maps = DEFAULT.maps_for(contract, case)
        assert DEFAULT.power_reached(contract, case, maps) >= 0.99 or maps == DEFAULT.max_maps
        if DEFAULT.min_maps < maps < DEFAULT.max_maps:
            assert DEFAULT.power_reached(contract, case, maps - 1) < 0.99
