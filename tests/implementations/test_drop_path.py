"""The DropPath implementations against the law of the contract each declares
(:mod:`dropblock_bench.families.drop_path`). Frequencies are judged within 5 standard errors
of the exact keep probability: a false alarm below 1e-6 per check."""

from __future__ import annotations

import math

import pytest
import torch
from dropblock_bench.implementations import drop_path as impl

from dropblock_bench.families import drop_path as law_of
from dropblock_bench.families.unit_dropout import constant_within_units

ROW_IMPLEMENTATIONS = [impl.drop_path, impl.drop_path_reference]


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _within_bound(kept: float, total: int, keep_probability: float) -> bool:
    return abs(kept / total - keep_probability) <= 5 * math.sqrt(keep_probability * (1 - keep_probability) / total)


@pytest.mark.parametrize("function", ROW_IMPLEMENTATIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(4000, 3), (2000, 4, 5, 5), (1000, 197, 8)])
def test_rows_are_kept_with_one_minus_p_and_scaled_by_its_inverse(function, shape):
    p, x = 0.3, torch.rand(shape) + 0.5
    out = function(x, p, generator=_generator())
    law = law_of.law(impl.CONTRACT, p, shape)
    dropped = out == 0
    assert constant_within_units(dropped, law_of.unit_shape(impl.CONTRACT, shape))
    kept_rows = int((~dropped.flatten(1)[:, 0]).sum())
    assert _within_bound(kept_rows, shape[0], 1 - p)
    torch.testing.assert_close(out[~dropped], x[~dropped] * law.train_scale)


def test_the_blog_rule_draws_one_coin_per_call_and_scales_at_eval():
    p, x, generator = 0.3, torch.rand(8, 4) + 0.5, _generator()
    calls = [impl.drop_path_blog(x, p, generator=generator) for _ in range(4000)]
    assert all(torch.equal(out, x) or bool((out == 0).all()) for out in calls)  # the whole batch, unscaled
    assert _within_bound(sum(torch.equal(out, x) for out in calls), len(calls), 1 - p)
    law = law_of.law(impl.BLOG_CONTRACT, p, tuple(x.shape))
    torch.testing.assert_close(impl.drop_path_blog(x, p, training=False), x * law.eval_scale)


def test_bfloat16_keeps_the_right_fraction_and_the_floor_trick_would_not():
    """In bfloat16, ``floor(1 - p + u)`` in the input's dtype keeps 0.9884 of the rows at p = 0.01;
    200,000 rows put 5 standard errors at 0.0011, so this check tells the two apart."""
    p, rows = 0.01, 200_000
    x = torch.ones(rows, 1, dtype=torch.bfloat16)
    kept = int((impl.drop_path(x, p, generator=_generator()) != 0).sum())
    assert _within_bound(kept, rows, 1 - p)
    out = impl.drop_path(x, 0.1, generator=_generator())  # the factor stays float32: one rounding
    assert set(out.unique().tolist()) <= {0.0, torch.tensor(1 / 0.9).to(torch.bfloat16).item()}
    floor_trick = torch.floor(torch.full((rows,), 1 - p, dtype=torch.bfloat16) + torch.rand(rows, generator=_generator()).to(torch.bfloat16))
    assert not _within_bound(int(floor_trick.sum()), rows, 1 - p)


@pytest.mark.parametrize("function", ROW_IMPLEMENTATIONS, ids=lambda f: f.__name__)
def test_trivial_cases(function):
    x = torch.randn(5, 3, requires_grad=True)
    assert function(x, 0.0) is x and function(x, 0.7, training=False) is x
    zeros = function(x, 1.0)
    assert bool((zeros == 0).all()) and not zeros.isnan().any()
    zeros.sum().backward()  # an honest zero gradient, not a tensor cut off from the graph
    assert torch.equal(x.grad, torch.zeros_like(x))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        function(x, 1.5)
    with pytest.raises(ValueError, match="sample dimension"):
        function(torch.tensor(1.0), 0.1)


def test_in_place_gradient_and_reproducibility():
    x = torch.rand(64, 3, 4) + 0.5
    want = impl.drop_path(x, 0.4, generator=_generator(3))
    assert torch.equal(want, impl.drop_path(x, 0.4, generator=_generator(3)))
    in_place = x.clone()
    assert impl.drop_path(in_place, 0.4, inplace=True, generator=_generator(3)) is in_place
    assert torch.equal(in_place, want)
    leaf = x.clone().requires_grad_()
    impl.drop_path(leaf, 0.4, generator=_generator(3)).sum().backward()
    torch.testing.assert_close(leaf.grad, want / x)


def test_the_module_passes_its_mode():
    module = impl.DropPath(0.5)
    x = torch.ones(1000, 2)
    assert torch.equal(module.eval()(x), x)
    out = module.train()(x)
    assert set(out.unique().tolist()) <= {0.0, 2.0}
    assert "p=0.5" in repr(module)
