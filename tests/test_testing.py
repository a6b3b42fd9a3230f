"""The test helper for users' own suites: ``assert_dropblock`` and its pytest fixture."""

from __future__ import annotations

import pytest
import torch
from broken_dropblocks import dropout_scale, one_mask_for_the_whole_batch
from correct_dropblocks import corner_seeds
from dropblock_bench.implementations import blog_style, cutout, fused

from dropblock_bench.testing import as_implementation, assert_dropblock


def test_a_library_checks_its_dropblock_in_one_line(assert_dropblock):
    """What a user writes: the fixture, one call, quick at the session's option or not."""
    assert_dropblock(fused.drop_block2d, quick=True)


def test_contracts_are_given_as_plain_strings():
    report = assert_dropblock(blog_style.drop_block2d, {"mask": "shared", "seeds": "anywhere", "gamma": "naive"}, quick=True)
    assert report.passed and {c.check for c in report.checks if c.verdict == "note"} >= {"paper.mask", "paper.gamma"}


def test_a_plain_function_without_keywords_is_wrapped():
    report = assert_dropblock(lambda x, p, k: corner_seeds(x, p, k), quick=True, name="plain")
    eval_check = next(c for c in report.checks if c.check == "api.eval")
    assert eval_check.verdict == "skip"


def test_failures_raise_an_assertion_listing_each_failed_check():
    with pytest.raises(AssertionError) as error:
        assert_dropblock(dropout_scale, quick=True)
    message = str(error.value)
    assert "dropout_scale breaks its contract" in message
    assert "fail normalisation.scale" in message


def test_a_batch_shared_mask_is_named_as_such():
    with pytest.raises(AssertionError, match="independence.samples") as error:
        assert_dropblock(one_mask_for_the_whole_batch)
    assert "fail rate" not in str(error.value)


def test_strict_raises_on_warnings_too():
    def p_one_keeps_everything(x, p, block_size, *, training=True, inplace=False, generator=None):
        return x if p == 1.0 else fused.drop_block2d(x, p, block_size, training=training, inplace=inplace, generator=generator)

    assert assert_dropblock(p_one_keeps_everything, quick=True).warnings
    with pytest.raises(AssertionError, match="warn api.p1"):
        assert_dropblock(p_one_keeps_everything, quick=True, strict=True)


def test_wrong_kinds_raise_type_error_with_how_to_wrap():
    import torch

    with pytest.raises(TypeError, match="nn.Module class"):
        as_implementation(torch.nn.Dropout)


def _plain_drop_path(x, p):
    """A user's DropPath with no keywords: rows kept with probability 1 - p, divided by it."""
    keep = (torch.rand((x.shape[0],) + (1,) * (x.dim() - 1)) >= p).to(x.dtype)
    return x * keep / (1 - p) if p < 1 else x * 0


def _drop_path_scaled_at_train(x, p):
    """The classic slip: kept rows multiplied by 1 - p in training (the eval-time rule)."""
    keep = (torch.rand((x.shape[0],) + (1,) * (x.dim() - 1)) >= p).to(x.dtype)
    return x * keep * (1 - p)


def test_other_families_are_checked_against_their_own_law():
    report = assert_dropblock(_plain_drop_path, family="drop-path", quick=True)
    assert report.family == "drop-path" and report.passed
    with pytest.raises(AssertionError, match="normalisation"):
        assert_dropblock(_drop_path_scaled_at_train, family="drop-path", quick=True)
    assert assert_dropblock(cutout.cutout, family="cutout", quick=True).passed
    with pytest.raises(ValueError, match="has no field mask"):
        as_implementation(_plain_drop_path, {"mask": "shared"}, family="drop-path")
    with pytest.raises(ValueError, match="unknown family"):
        as_implementation(_plain_drop_path, family="dropout")
