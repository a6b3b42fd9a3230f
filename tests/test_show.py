"""``dbench show``'s engine: each family's default call, options that override it, and the
one-line refusals."""

from __future__ import annotations

import pytest

from dropblock_bench import show
from dropblock_bench.errors import DbenchError
from dropblock_bench.registry import get_implementation


@pytest.mark.parametrize("name", ["fused", "dropblock3d", "drop-path", "spatial-dropout", "cutout"])
def test_every_family_has_a_default_call_whose_mask_has_its_shape(name):
    implementation = get_implementation(name)
    case = show.drawn_case(implementation)
    assert case.shape_label == show.DEFAULTS[implementation.family][0]
    mask = show.sample(implementation, case, seed=1)
    assert mask.shape == case.shape and mask.dtype.is_floating_point is False and bool(mask.any())


def test_options_override_the_defaults_and_foreign_ones_are_refused():
    case = show.drawn_case(get_implementation("cutout"), "2x3x8x8", block_size=4, holes=1)
    assert case.setting_label == "holes=1 L=4" and case.shape == (2, 3, 8, 8)
    with pytest.raises(DbenchError, match=r"drop-path \(drop-path\) takes no --block-size; its call is f\(x, p\)"):
        show.drawn_case(get_implementation("drop-path"), block_size=3)
    with pytest.raises(DbenchError, match="dropblock3d takes NxCxDxHxW shapes"):
        show.drawn_case(get_implementation("dropblock3d"), "1x2x8x8")
