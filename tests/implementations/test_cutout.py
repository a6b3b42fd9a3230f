"""The Cutout implementations against the law of their contract
(:mod:`dropblock_bench.families.cutout`): per-pixel frequencies within 5 standard errors of the
exact probability (a false alarm below 1e-4 over all 144 pixels together), holes shared by channels,
each hole a clipped square."""

from __future__ import annotations

import pytest
import torch
from dropblock_bench.implementations import cutout as impl

from dropblock_bench.families import cutout as law

IMPLEMENTATIONS = [impl.cutout, impl.cutout_blog, impl.cutout_reference]
SHAPE, HOLES, LENGTH = (3000, 2, 12, 12), 2, 6


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _matches_the_law(cut: torch.Tensor, contract: law.CutoutContract) -> bool:
    exact = law.masked_probability_map(contract, HOLES, LENGTH, SHAPE[2], SHAPE[3])
    error = (exact * (1 - exact) / cut.shape[0]).sqrt()
    return bool(((cut.double().mean(0) - exact).abs() <= 5 * error + 1e-12).all())


@pytest.mark.parametrize("function", IMPLEMENTATIONS, ids=lambda f: f.__name__)
def test_pixels_are_cut_as_the_law_says_and_channels_share_the_holes(function):
    x = torch.rand(SHAPE) + 0.5
    out = function(x, HOLES, LENGTH, generator=_generator())
    cut = out == 0
    assert torch.equal(cut[:, 0], cut[:, 1])  # one hole set per image
    assert torch.equal(out[~cut], x[~cut])  # no rescale
    assert _matches_the_law(cut[:, 0], impl.CONTRACT)


def test_the_check_catches_centres_restricted_to_where_the_patch_fits():
    """The same check on a Cutout whose centres keep the whole patch inside the image: corner
    pixels are cut with chance 1/7 per hole row instead of 4/12, and the check says so."""
    fits = law.reference_cutout_mask(law.CutoutContract(centre="fits"), SHAPE, HOLES, LENGTH, generator=_generator())
    assert not _matches_the_law(fits[:, 0], impl.CONTRACT)


@pytest.mark.parametrize("function", IMPLEMENTATIONS, ids=lambda f: f.__name__)
def test_one_hole_is_a_square_clipped_at_the_border(function):
    out = function(torch.ones(500, 1, 9, 10), 1, 5, generator=_generator(1))
    for image in (out[:, 0] == 0):
        rows, cols = image.any(1).nonzero().flatten(), image.any(0).nonzero().flatten()
        assert len(rows) <= 4 and len(cols) <= 4  # side 2 * (5 // 2)
        assert int(image.sum()) == len(rows) * len(cols)  # a full rectangle
        if 0 < rows.min() and rows.max() < 8 and 0 < cols.min() and cols.max() < 9:
            assert len(rows) == len(cols) == 4  # away from the border: the whole square


@pytest.mark.parametrize("function", IMPLEMENTATIONS, ids=lambda f: f.__name__)
def test_one_image_eval_mode_and_bad_arguments(function):
    image = torch.rand(3, 16, 16) + 0.5
    out = function(image, 1, 8, generator=_generator())
    assert out.shape == image.shape and int((out == 0).sum()) > 0
    assert function(image, 1, 8, training=False) is image
    with pytest.raises(ValueError, match="n_holes must be a positive integer"):
        function(image, 0, 8)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) or one image"):
        function(torch.rand(16, 16), 1, 8)


def test_in_place_and_the_module():
    x = torch.rand(4, 3, 16, 16) + 0.5
    want = impl.cutout(x, 2, 8, generator=_generator(5))
    assert torch.equal(want, impl.cutout(x, 2, 8, generator=_generator(5)))
    same = x.clone()
    assert impl.cutout(same, 2, 8, inplace=True, generator=_generator(5)) is same
    assert torch.equal(same, want)
    module = impl.Cutout(1, 8)
    assert module.eval()(x) is x and "length=8" in repr(module)
    assert int((module.train()(x) == 0).sum()) > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
def test_the_kernel_path_and_the_mask_path_cut_the_same_pixels(monkeypatch, dtype):
    """Same centres (one generator), same output: on the CPU kernel (holes as its clipped
    blocks) and by the mask (a GPU, or a gradient to record); cut pixels exact zeros."""
    x = (torch.rand(6, 3, 13, 11) - 0.5).to(dtype)
    with_kernel = impl.cutout(x, 3, 6, generator=torch.Generator().manual_seed(2))
    monkeypatch.setattr(impl.fused_backends, "cpu_kernel", lambda t: None)
    with_mask = impl.cutout(x, 3, 6, generator=torch.Generator().manual_seed(2))
    assert torch.equal(with_kernel, with_mask) and bool((with_kernel == 0).any())
    cut = with_kernel == 0
    assert torch.equal(with_kernel[~cut], x[~cut]) and not torch.signbit(with_kernel[cut]).any()


def test_a_gradient_flows_through_the_kept_pixels_only():
    x = torch.rand(2, 3, 9, 9, dtype=torch.float64, requires_grad=True)
    out = impl.cutout(x, 1, 4, generator=torch.Generator().manual_seed(1))
    out.sum().backward()
    assert torch.equal(x.grad, (out != 0).double())
