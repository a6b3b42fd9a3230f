"""The SpatialDropout implementations against the law of their contract
(:mod:`dropblock_bench.families.spatial_dropout`): whole maps, kept with 1 - p within 5
standard errors (a false alarm below 1e-6), scaled by its inverse."""

from __future__ import annotations

import math

import pytest
import torch
from dropblock_bench.implementations import spatial_dropout as impl

from dropblock_bench.families import spatial_dropout as law_of
from dropblock_bench.families.unit_dropout import constant_within_units

IMPLEMENTATIONS = [impl.spatial_dropout, impl.spatial_dropout_reference]


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("function", IMPLEMENTATIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(200, 40, 6, 6), (100, 30, 3, 4, 4), (300, 20, 9)])
def test_maps_are_dropped_whole_with_p_and_kept_ones_scaled(function, shape):
    p, x = 0.25, torch.rand(shape) + 0.5
    out = function(x, p, generator=_generator())
    dropped = out == 0
    assert constant_within_units(dropped, law_of.unit_shape(impl.CONTRACT, shape))
    assert not constant_within_units(dropped, law_of.unit_shape(law_of.SpatialDropoutContract(unit="sample"), shape))
    maps = shape[0] * shape[1]
    kept = int((~dropped.flatten(2)[..., 0]).sum())
    assert abs(kept / maps - (1 - p)) <= 5 * math.sqrt(p * (1 - p) / maps)
    torch.testing.assert_close(out[~dropped], x[~dropped] * law_of.law(impl.CONTRACT, p, shape).train_scale)


def test_agrees_with_torch_dropout2d_in_law():
    """PyTorch's ``dropout2d`` declares the same contract: the same structure and scale."""
    torch.manual_seed(0)
    out = torch.nn.functional.dropout2d(torch.ones(100, 50, 4, 4), 0.3)
    assert constant_within_units(out == 0, (100, 50, 1, 1))
    kept = out[out != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.7))


@pytest.mark.parametrize("function", IMPLEMENTATIONS, ids=lambda f: f.__name__)
def test_trivial_cases_and_bad_input(function):
    x = torch.randn(2, 3, 4, 4)
    assert function(x, 0.0) is x and function(x, 0.5, training=False) is x
    assert bool((function(x, 1.0) == 0).all())
    with pytest.raises(ValueError, match="at least one spatial dimension"):
        function(torch.randn(2, 3), 0.1)


def test_in_place_and_the_module():
    x = torch.rand(8, 16, 5, 5) + 0.5
    want = impl.spatial_dropout(x, 0.5, generator=_generator(2))
    same = x.clone()
    assert impl.spatial_dropout(same, 0.5, inplace=True, generator=_generator(2)) is same
    assert torch.equal(same, want)
    module = impl.SpatialDropout(0.5)
    assert module.eval()(x) is x and "p=0.5" in repr(module)
