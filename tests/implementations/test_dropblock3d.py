"""The DropBlock3d implementations against the law of their contract
(:mod:`dropblock_bench.families.dropblock3d`): per-position frequencies within 5 standard
errors of the exact probability (a false alarm of about 2e-4 over all 336 positions together), masks
that are unions of whole cubes, the batch's exact scale."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from dropblock_bench.implementations import dropblock3d as impl

from dropblock_bench.families import dropblock3d as law

IMPLEMENTATIONS = [impl.drop_block3d, impl.drop_block3d_reference]
VOLUME, K, P = (6, 7, 8), 3, 0.2


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _matches_the_law(dropped: torch.Tensor, gamma_scale: float = 1.0) -> bool:
    exact = law.drop_probability_volume(impl.CONTRACT, P, VOLUME, K)
    maps = dropped.flatten(0, 1).double()
    error = (exact * (1 - exact) / maps.shape[0]).sqrt()
    return bool(((maps.mean(0) - exact).abs() <= 5 * error + 1e-12).all())


def _unions_of_cubes(dropped: torch.Tensor, k: int) -> bool:
    """Opening by a k-cube (erode to the corners whose whole cube is dropped, paint them back)
    gives the mask back exactly iff every dropped unit lies in a whole dropped cube."""
    maps = dropped.flatten(0, 1)[:, None].float()
    corners = 1 - F.max_pool3d(1 - maps, k, stride=1)  # (M, 1, D - k + 1, H - k + 1, W - k + 1)
    painted = torch.zeros_like(maps)
    d, h, w = corners.shape[-3:]
    for a, b, c in itertools.product(range(k), repeat=3):
        painted[..., a : a + d, b : b + h, c : c + w] = torch.maximum(painted[..., a : a + d, b : b + h, c : c + w], corners)
    return torch.equal(painted.bool(), maps.bool())


@pytest.mark.parametrize("function", IMPLEMENTATIONS, ids=lambda f: f.__name__)
def test_the_law_the_cubes_and_the_scale(function):
    x = torch.rand(250, 8, *VOLUME) + 0.5
    out = function(x, P, K, generator=_generator())
    dropped = out == 0
    assert _matches_the_law(dropped)
    assert _unions_of_cubes(dropped, K)
    scale = x.numel() / int((~dropped).sum())
    torch.testing.assert_close(out[~dropped], x[~dropped] * scale)


def test_the_check_catches_the_2d_gamma():
    """A DropBlock3d that takes the 2-D gamma (``p HW / (k**2 (H - k + 1)(W - k + 1))``) seeds
    ``k (D - k + 1) / D`` = 2 times too often here, and the frequency check says so."""
    two_d = law.gamma(impl.CONTRACT, P, VOLUME, K) * K * (VOLUME[0] - K + 1) / VOLUME[0]
    corners = torch.rand(250 * 8, 4, 5, 6, generator=_generator()) < two_d
    dropped = torch.zeros(250 * 8, *VOLUME, dtype=torch.bool)
    for a, b, c in itertools.product(range(K), repeat=3):
        dropped[:, a : a + 4, b : b + 5, c : c + 6] |= corners
    assert not _matches_the_law(dropped.view(250, 8, *VOLUME))


@pytest.mark.parametrize("function", IMPLEMENTATIONS, ids=lambda f: f.__name__)
def test_large_blocks_trivial_cases_and_bad_input(function):
    x = torch.rand(40, 4, 2, 5, 5) + 0.5
    dropped = function(x, 0.3, 7, generator=_generator()) == 0  # clamped to 2: cubes of 2
    assert _unions_of_cubes(dropped, 2) and bool(dropped.any())
    assert function(x, 0.0, 3) is x and function(x, 0.5, 3, training=False) is x
    assert bool((function(x, 1.0, 3) == 0).all())
    with pytest.raises(ValueError, match="5-D"):
        function(torch.rand(2, 3, 4, 4), 0.1, 3)


def test_in_place_channels_last_and_the_module():
    x = torch.rand(4, 3, 5, 6, 7) + 0.5
    want = impl.drop_block3d(x, 0.3, 2, generator=_generator(4))
    same = x.clone()
    assert impl.drop_block3d(same, 0.3, 2, inplace=True, generator=_generator(4)) is same
    assert torch.equal(same, want)
    strided = x.to(memory_format=torch.channels_last_3d)
    out = impl.drop_block3d(strided, 0.3, 2, generator=_generator(4))
    assert torch.equal(out, want) and out.is_contiguous(memory_format=torch.channels_last_3d)
    module = impl.DropBlock3d(0.3, 2)
    assert module.eval()(x) is x and "block_size=2" in repr(module)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_the_pure_torch_path_keeps_the_law_the_cubes_and_the_scale(monkeypatch, dtype):
    """Without the CPU kernel (as on a GPU, or with no compiler) the corners are drawn in torch
    and counted from a one-byte mask: the same law, whole cubes, the exact scale."""
    monkeypatch.setattr(impl.fused_backends, "cpu_kernel", lambda t: None)
    x = (torch.rand(250, 8, *VOLUME) + 0.5).to(dtype)
    out = impl.drop_block3d(x, P, K, generator=_generator(9))
    dropped = out == 0
    assert _matches_the_law(dropped) and _unions_of_cubes(dropped, K)
    scale = x.numel() / int((~dropped).sum())
    torch.testing.assert_close(out[~dropped].float(), x[~dropped].float() * scale, rtol=1e-2 if dtype != torch.float32 else 1e-6, atol=0)


def test_the_kernel_draws_the_same_cubes_whatever_the_thread_count():
    x = torch.rand(6, 5, 5, 9, 7) + 0.5
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = impl.drop_block3d(x, 0.3, 3, generator=_generator(5))
        torch.set_num_threads(max(2, threads))
        many = impl.drop_block3d(x, 0.3, 3, generator=_generator(5))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, many) and bool((one == 0).any())


@pytest.mark.parametrize("kernel", [True, False], ids=["kernel", "torch"])
def test_the_gradient_is_the_same_map_and_only_seeds_or_corners_are_saved(monkeypatch, kernel):
    if not kernel:
        monkeypatch.setattr(impl.fused_backends, "cpu_kernel", lambda t: None)
    x = (torch.rand(2, 3, 4, 6, 5, dtype=torch.float64) + 0.5).requires_grad_()
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = impl.drop_block3d(x, 0.4, 2, generator=_generator(2))
    g = torch.rand_like(out)
    out.backward(g)
    scale = x.numel() / int((out != 0).sum())
    torch.testing.assert_close(x.grad, torch.where(out == 0, 0.0, g * scale))
    assert {t.dtype for t in saved} <= {torch.float32, torch.int64} and all(t.numel() < x.numel() for t in saved)
    assert not any(t.dtype == torch.bool or t.shape == x.shape for t in saved)  # no mask
    assert torch.autograd.gradcheck(lambda t: impl.drop_block3d(t, 0.4, 2, generator=_generator(2)), (x.detach().requires_grad_(),))
