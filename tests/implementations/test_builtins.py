"""Every built-in implementation against its own declared contract, on small cases.

Parametrised over the registry: a new built-in is tested by registering it. ``fused`` and
``fused-shared`` run their compiled CPU kernel here; their pure-torch fallbacks are tested too,
as ``fused[torch]`` and ``fused-shared[torch]``.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from torch_paths import TORCH_PATHS

from dropblock_bench import spec
from dropblock_bench.registry import Implementation, list_implementations

BUILTINS = [impl for impl in list_implementations(family="dropblock2d") if impl.origin == "dropblock-bench"]
TESTED = BUILTINS + TORCH_PATHS
IDS = [impl.name for impl in TESTED]
# Family-wise false-alarm level of each statistical test below (fixed seeds: deterministic).
ALPHA = 1e-3


def test_the_four_builtins_are_registered():
    assert [impl.name for impl in BUILTINS] == ["blog-style", "fused", "fused-shared", "paper"]


def _run(impl: Implementation, x: torch.Tensor, p: float, k: int, seed: int = 0, **kwargs) -> torch.Tensor:
    generator = torch.Generator(device=x.device).manual_seed(seed)
    return impl.load()(x, p, k, generator=generator, **kwargs)


def _drop_mask(impl: Implementation, out: torch.Tensor) -> torch.Tensor:
    """Bool drop mask per independent map: (N, C, H, W), or (N, 1, H, W) for shared masks."""
    dropped = out == 0
    if impl.contract.mask is spec.MaskSharing.SHARED:
        assert bool((dropped == dropped[:, :1]).all()), "a shared mask differs between channels"
        return dropped[:, :1]
    return dropped


@pytest.fixture(params=TESTED, ids=IDS)
def impl(request) -> Implementation:
    return request.param


class TestArguments:
    def test_rejects_wrong_rank(self, impl):
        with pytest.raises(ValueError, match="4-D"):
            impl.load()(torch.ones(2, 3, 4), 0.1, 3)

    @pytest.mark.parametrize("p", [-0.01, 1.01, float("nan")])
    def test_rejects_bad_p(self, impl, p):
        with pytest.raises(ValueError, match="drop probability"):
            impl.load()(torch.ones(1, 1, 4, 4), p, 3)

    @pytest.mark.parametrize("k", [0, -1, 2.0, True])
    def test_rejects_bad_block_size(self, impl, k):
        with pytest.raises(ValueError, match="block_size"):
            impl.load()(torch.ones(1, 1, 4, 4), 0.1, k)

    def test_rejects_integer_input(self, impl):
        with pytest.raises(ValueError, match="floating-point"):
            impl.load()(torch.ones(1, 1, 4, 4, dtype=torch.int64), 0.1, 3)


class TestTrivialCases:
    def test_eval_mode_and_p_zero_return_the_input(self, impl):
        x = torch.randn(2, 3, 8, 8)
        assert impl.load()(x, 0.5, 3, training=False) is x
        assert impl.load()(x, 0.0, 3) is x

    def test_p_one_gives_zeros_without_nan(self, impl):
        x = torch.randn(2, 3, 8, 8)
        x[0, 0, 0, 0] = float("inf")
        out = impl.load()(x, 1.0, 3)
        assert out.dtype == x.dtype and bool((out == 0).all())

    def test_p_one_gradient_is_zero(self, impl):
        x = torch.randn(2, 3, 8, 8, requires_grad=True)
        impl.load()(x, 1.0, 3).sum().backward()
        assert bool((x.grad == 0).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_shape_dtype_device_preserved(impl, dtype):
    x = torch.rand(3, 4, 10, 12, dtype=dtype) + 0.5
    out = _run(impl, x, 0.3, 3)
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert bool(torch.isfinite(out).all())


def test_half_precision_survives_more_than_65504_kept_units(impl):
    # torchvision sums the kept count in fp16 and returns all zeros here.
    x = torch.ones(1, 2, 250, 200, dtype=torch.float16)  # 100,000 units
    out = _run(impl, x, 0.1, 7)
    kept = out != 0
    assert 0 < int(kept.sum()) < x.numel()
    expected_scale = x.numel() / int(kept.sum())
    # the scale rounded to float16 once is off by at most half an ulp; one ulp allows a second rounding
    ulp = torch.finfo(torch.float16).eps
    torch.testing.assert_close(out[kept].float(), torch.full_like(out[kept].float(), expected_scale), rtol=ulp, atol=0)


# (N, C, H, W, k): even k, H != W, k equal to and above the map size.
GEOMETRIES = [(4, 3, 11, 11, 3), (4, 3, 9, 13, 4), (4, 3, 13, 8, 2), (4, 3, 7, 7, 7), (4, 3, 5, 9, 7), (4, 3, 6, 4, 10)]


@pytest.mark.parametrize(("n", "c", "h", "w", "k"), GEOMETRIES)
def test_dropped_units_form_the_contracts_blocks(impl, n, c, h, w, k):
    for seed in range(5):
        out = _run(impl, torch.ones(n, c, h, w), 0.3, k, seed=seed)
        dropped = _drop_mask(impl, out)
        assert bool(spec.explained_by_blocks(impl.contract, dropped, k).all())


def test_kept_units_are_scaled_by_the_contracts_normalisation(impl):
    x = torch.rand(4, 3, 12, 10) + 0.5
    out = _run(impl, x, 0.25, 3)
    dropped = out == 0
    scale = spec.normalisation_scale(impl.contract, dropped, 0.25, 3)
    torch.testing.assert_close(out, torch.where(dropped, 0.0, x * scale))


def test_backward_is_mask_times_scale(impl):
    x = (torch.rand(3, 4, 11, 9) + 0.5).requires_grad_()
    out = _run(impl, x, 0.3, 3)
    upstream = torch.randn_like(out)
    (out * upstream).sum().backward()
    mask_times_scale = (out / x).detach()
    torch.testing.assert_close(x.grad, upstream * mask_times_scale)


def test_generator_makes_results_reproducible(impl):
    x = torch.randn(4, 3, 16, 16)
    assert torch.equal(_run(impl, x, 0.3, 3, seed=7), _run(impl, x, 0.3, 3, seed=7))
    assert not torch.equal(_run(impl, x, 0.3, 3, seed=7), _run(impl, x, 0.3, 3, seed=8))


def test_input_untouched_unless_in_place(impl):
    x = torch.randn(4, 3, 16, 16)
    before = x.clone()
    out = _run(impl, x, 0.3, 3)
    assert torch.equal(x, before) and not torch.equal(out, before)
    expected = _run(impl, before.clone(), 0.3, 3, seed=3)
    result = _run(impl, x, 0.3, 3, seed=3, inplace=True)
    assert result.data_ptr() == x.data_ptr() and torch.equal(x, expected)


@pytest.mark.parametrize("layout", ["channels_last", "transposed"])
def test_non_contiguous_input_gives_the_same_result(impl, layout):
    base = torch.randn(3, 4, 10, 10)
    x = base.to(memory_format=torch.channels_last) if layout == "channels_last" else base.transpose(2, 3)
    assert not x.is_contiguous()
    torch.testing.assert_close(_run(impl, x, 0.3, 3), _run(impl, x.contiguous(), 0.3, 3), rtol=0, atol=0)


def test_module_wrapper_passes_training_flag(impl):
    if impl not in BUILTINS:
        pytest.skip("a test-only entry point: no module wrapper")
    module_name, _, _ = impl.target.partition(":")
    family = __import__(module_name, fromlist=["_"])
    module_class = family.DropBlock2dShared if impl.name == "fused-shared" else family.DropBlock2d
    module = module_class(p=0.2, block_size=3)
    assert "p=0.2, block_size=3" in repr(module)
    x = torch.randn(2, 3, 8, 8)
    assert module.eval()(x) is x
    torch.manual_seed(0)
    assert (module.train()(x) == 0).any()
    with pytest.raises(ValueError, match="drop probability"):
        module_class(p=2.0)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 3),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    k=st.integers(1, 14),
    p=st.floats(0.0, 1.0),
    index=st.integers(0, len(TESTED) - 1),
)
def test_any_input_keeps_shape_and_blocks(n, c, h, w, k, p, index):
    impl = TESTED[index]
    x = torch.rand(n, c, h, w) + 0.5
    out = _run(impl, x, p, k)
    assert out.shape == x.shape and bool(torch.isfinite(out).all())
    assert impl.load()(x, p, k, training=False) is x
    if p < 1.0:
        assert bool(spec.explained_by_blocks(impl.contract, _drop_mask(impl, out), k).all())


# --------------------------------------------------------------------------- statistics

STAT_CASES = [(14, 14, 7, 0.1), (9, 13, 4, 0.3), (7, 7, 7, 0.1), (5, 9, 7, 0.2), (16, 16, 3, 0.05)]


@pytest.mark.parametrize(("h", "w", "k", "p"), STAT_CASES)
def test_position_frequencies_match_the_exact_map(impl, h, w, k, p):
    """Per-position drop counts over independent maps are Binomial(maps, map[i, j])."""
    x = torch.ones(500, 8, h, w)
    dropped = _drop_mask(impl, _run(impl, x, p, k, seed=11))
    maps = dropped.flatten(0, 1)  # independent maps
    counts = maps.sum(0).double()
    probability = spec.drop_probability_map(impl.contract, p, h, w, k)
    n = maps.shape[0]
    z = (counts - n * probability) / (n * probability * (1 - probability)).clamp_min(1e-12).sqrt()
    assert z.abs().max().item() < stats.norm.isf(ALPHA / (2 * h * w)), "a position is dropped too often or too rarely"


@pytest.mark.parametrize(("h", "w", "k", "p"), STAT_CASES)
def test_mean_drop_rate_matches_the_contract(impl, h, w, k, p):
    x = torch.ones(500, 8, h, w)
    maps = _drop_mask(impl, _run(impl, x, p, k, seed=5)).flatten(0, 1).flatten(1).double()
    rates = maps.mean(1)
    expected = spec.expected_drop_rate(impl.contract, p, h, w, k)
    assert stats.ttest_1samp(rates.numpy(), expected).pvalue > ALPHA


@pytest.mark.parametrize("fused_name", ["fused", "fused[torch]"])
@pytest.mark.parametrize(("h", "w", "k", "p"), STAT_CASES)
def test_fused_is_indistinguishable_from_paper(h, w, k, p, fused_name):
    paper, fused = (next(i for i in TESTED if i.name == name) for name in ("paper", fused_name))
    x = torch.ones(400, 8, h, w)
    counts = [_drop_mask(i, _run(i, x, p, k, seed=s)).flatten(1).sum(1).numpy() for i, s in ((paper, 1), (fused, 2))]
    assert stats.ks_2samp(*counts).pvalue > ALPHA
    assert stats.mannwhitneyu(*counts).pvalue > ALPHA


def test_fused_count_equals_painting_the_blocks():
    """The mask-free count of `fused` against explicit painting, on crowded and lonely maps."""
    from dropblock_bench.implementations import fused

    for (h, w, k, p), seed in [((14, 14, 7, 0.1), 0), ((9, 13, 4, 0.6), 1), ((56, 56, 7, 0.3), 2), ((7, 7, 7, 0.5), 3), ((5, 9, 7, 0.9), 4)]:
        blocks = fused.sample_blocks(fused.CONTRACT, 64, h, w, k, p, torch.Generator().manual_seed(seed), torch.device("cpu"))
        painted = torch.zeros(64 * h, w, dtype=torch.bool)
        for row, col in zip(blocks.first_row(h).tolist(), blocks.left.tolist()):
            painted[row : row + blocks.size, col : col + blocks.size] = True
        assert int(fused.count_dropped(blocks, h, w)) == int(painted.sum())
