"""The compiled CPU kernel of ``fused``: its sampler's law, exact counts, and an apply pass that
equals painting the same seeds with the pure-torch helpers, in every dtype and layout."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch
from dropblock_bench.implementations import fused, fused_backends, fused_cpu, fused_ops
from dropblock_bench.implementations.fused_sampling import seed_geometry
from scipy import stats

from dropblock_bench import spec
from dropblock_bench.switches import HUGE_PAGES_ENV

KERNEL = fused_cpu.load()
pytestmark = pytest.mark.skipif(KERNEL is None, reason=f"CPU kernel unavailable: {fused_cpu.status()}")
# Family-wise false-alarm level of each statistical test below (fixed seeds: deterministic).
ALPHA = 1e-3
GEOMETRIES = [(14, 14, 7, 0.1), (9, 13, 4, 0.3), (7, 7, 7, 0.1), (5, 9, 7, 0.2), (56, 56, 7, 0.3), (3, 70, 2, 0.5)]


def _geometry(contract, h, w, k, p) -> fused_cpu.SeedGeometry:
    return seed_geometry(contract, h, w, k, p)


def _blocks(seeds: fused_cpu.Seeds, geometry: fused_cpu.SeedGeometry) -> fused.Blocks:
    """The kernel's seeds as the pure-torch path's block corners."""
    mask = seeds.flat // seeds.per_mask
    within = seeds.flat % seeds.per_mask
    top = within // geometry.cols + geometry.top0
    left = within % geometry.cols + geometry.left0
    return fused.Blocks(mask, top, left, geometry.k)


def _reference(x: torch.Tensor, seeds, geometry, maps_per_mask: int, scale: float) -> torch.Tensor:
    """x * scale with the blocks zeroed, from torch's own multiply and the torch path's painter."""
    n, c, h, w = x.shape
    masks = n * c // maps_per_mask
    dropped = fused.paint_mask(_blocks(seeds, geometry), (masks, 1, h, w), x.device)
    dropped = dropped.reshape(masks, 1, h * w).expand(masks, maps_per_mask, h * w).reshape(x.shape)
    return torch.mul(x, torch.tensor(scale, dtype=torch.float32)).masked_fill(dropped, 0.0)


class TestSampler:
    def test_same_seed_same_seeds_whatever_the_thread_count(self):
        geometry = _geometry(fused.CONTRACT, 14, 14, 7, 0.1)
        before = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            one, dropped_one = KERNEL.sample(42, 5000, geometry)
            torch.set_num_threads(2)
            two, dropped_two = KERNEL.sample(42, 5000, geometry)
        finally:
            torch.set_num_threads(before)
        assert torch.equal(one.flat, two.flat) and dropped_one == dropped_two
        assert not torch.equal(KERNEL.sample(43, 5000, geometry)[0].flat, one.flat)

    def test_seeds_are_ascending_and_in_range(self):
        geometry = _geometry(fused.CONTRACT, 9, 13, 4, 0.3)
        seeds, _ = KERNEL.sample(3, 700, geometry)
        assert bool((seeds.flat.diff() > 0).all())
        assert 0 <= int(seeds.flat.min()) and int(seeds.flat.max()) < 700 * geometry.rows * geometry.cols

    @pytest.mark.parametrize(("h", "w", "k", "p"), GEOMETRIES)
    def test_seed_count_is_binomial(self, h, w, k, p):
        geometry = _geometry(fused.CONTRACT, h, w, k, p)
        positions = 4000 * geometry.rows * geometry.cols
        seeds, _ = KERNEL.sample(11, 4000, geometry)
        assert stats.binomtest(seeds.flat.numel(), positions, geometry.gamma).pvalue > ALPHA

    @pytest.mark.parametrize(("h", "w", "k", "p"), GEOMETRIES)
    def test_every_position_is_equally_likely(self, h, w, k, p):
        """Seed counts per position of the seed region (over many masks) are uniform."""
        geometry = _geometry(fused.CONTRACT, h, w, k, p)
        per_mask = geometry.rows * geometry.cols
        if per_mask == 1:
            pytest.skip("a single seed position")
        seeds, _ = KERNEL.sample(5, 20000, geometry)
        counts = torch.bincount(seeds.flat % per_mask, minlength=per_mask).numpy()
        assert stats.chisquare(counts).pvalue > ALPHA

    def test_seeds_of_neighbouring_masks_are_independent(self):
        """Seed counts of masks m and m + 1 (same and different sampling groups) are uncorrelated."""
        geometry = _geometry(fused.CONTRACT, 14, 14, 7, 0.3)
        seeds, _ = KERNEL.sample(9, 40000, geometry)
        counts = torch.bincount(seeds.flat // seeds.per_mask, minlength=40000).double().numpy()
        assert stats.pearsonr(counts[:-1], counts[1:]).pvalue > ALPHA

    @pytest.mark.parametrize("gamma", [0.0, 1.0])
    def test_gamma_edges(self, gamma):
        geometry = _geometry(fused.CONTRACT, 9, 9, 3, 0.5)._replace(gamma=gamma)
        seeds, _ = KERNEL.sample(1, 10, geometry)
        assert seeds.flat.numel() == (0 if gamma == 0.0 else 10 * geometry.rows * geometry.cols)

    @pytest.mark.parametrize(("h", "w", "k", "p"), GEOMETRIES)
    @pytest.mark.parametrize("contract", [fused.CONTRACT, fused.SHARED_CONTRACT], ids=["per-channel", "shared"])
    def test_dropped_count_is_exact(self, h, w, k, p, contract):
        geometry = _geometry(contract, h, w, k, p)
        seeds, dropped = KERNEL.sample(7, 300, geometry)
        painted = fused.paint_mask(_blocks(seeds, geometry), (300, 1, h, w), torch.device("cpu"))
        assert dropped == int(painted.sum())

    # Under one seed per mask on average most blocks of the wide count's window (8 blocks back,
    # across masks) lie in other masks; these hold many masks of 2, 3 and more seeds, and
    # masks that start or end within a group of 8 blocks.
    @pytest.mark.parametrize(("h", "w", "k", "p"), [(14, 14, 7, 0.2), (10, 10, 3, 0.05), (7, 7, 7, 0.1)])
    def test_dropped_count_is_exact_for_sparse_masks(self, h, w, k, p):
        geometry = _geometry(fused.CONTRACT, h, w, k, p)
        per_mask = geometry.rows * geometry.cols
        assert per_mask * geometry.gamma < 1.0  # the sparse path
        seeds, dropped = KERNEL.sample(21, 20000, geometry)
        held = torch.bincount(seeds.flat // per_mask, minlength=20000)
        assert per_mask == 1 or int((held >= 3).sum()) >= 50
        painted = fused.paint_mask(_blocks(seeds, geometry), (20000, 1, h, w), torch.device("cpu"))
        assert dropped == int(painted.sum())


# Seeds on the whole map with centred blocks, clipped at the edges (not a fused contract, but
# the kernel takes any geometry): the clipping paths of counting and zeroing.
CLIPPED = fused_cpu.SeedGeometry(height=9, width=11, k=5, top0=-2, rows=9, left0=-2, cols=11, gamma=0.15)


def _painted(seeds: fused_cpu.Seeds, geometry: fused_cpu.SeedGeometry) -> torch.Tensor:
    """The (masks, H, W) drop mask of the seeds, painted one block at a time with clipping."""
    g = geometry
    mask = torch.zeros(seeds.masks, g.height, g.width, dtype=torch.bool)
    for flat in seeds.flat.tolist():
        m, position = divmod(flat, seeds.per_mask)
        top, left = position // g.cols + g.top0, position % g.cols + g.left0
        mask[m, max(top, 0) : top + g.k, max(left, 0) : left + g.k] = True
    return mask


def _clipped_reference(x: torch.Tensor, seeds, geometry, maps_per_mask: int, scale: float) -> torch.Tensor:
    """x * scale with the blocks zeroed, clipping included (the map of mask m is maps m * maps_per_mask onwards)."""
    dropped = _painted(seeds, geometry).repeat_interleave(maps_per_mask, dim=0).reshape(x.shape)
    return torch.mul(x, torch.tensor(scale, dtype=torch.float32)).masked_fill(dropped, 0.0)


class TestClippedBlocks:
    @pytest.mark.parametrize("maps_per_mask", [1, 4])
    def test_count_and_apply(self, maps_per_mask):
        x = torch.randn(8, 4, 9, 11, generator=torch.Generator().manual_seed(3))
        seeds, dropped = KERNEL.sample(4, x.numel() // (99 * maps_per_mask), CLIPPED)
        assert dropped == int(_painted(seeds, CLIPPED).sum()) > 0
        for dtype in (torch.float32, torch.float16):
            xd, out = x.to(dtype), torch.empty_like(x, dtype=dtype)
            KERNEL.apply(xd, out, seeds, maps_per_mask, CLIPPED, 1.25)
            assert torch.equal(out, _clipped_reference(xd, seeds, CLIPPED, maps_per_mask, 1.25))


class TestApply:
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
    @pytest.mark.parametrize(("h", "w", "k", "p"), GEOMETRIES)
    @pytest.mark.parametrize("maps_per_mask", [1, 3])
    def test_equals_painting_the_same_seeds(self, dtype, h, w, k, p, maps_per_mask):
        if not KERNEL.supports(dtype):
            pytest.skip(f"this build has no {dtype}")
        x = torch.randn(4, 3, h, w, generator=torch.Generator().manual_seed(0)).to(dtype)
        geometry = _geometry(fused.CONTRACT, h, w, k, p)
        seeds, _ = KERNEL.sample(5, x.numel() // (h * w * maps_per_mask), geometry)
        scale = 1.2345678
        out = torch.empty_like(x)
        KERNEL.apply(x, out, seeds, maps_per_mask, geometry, scale)
        assert torch.equal(out, _reference(x, seeds, geometry, maps_per_mask, scale))
        in_place = x.clone()
        KERNEL.apply(in_place, in_place, seeds, maps_per_mask, geometry, scale)
        assert torch.equal(in_place, out)

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
    def test_special_values_round_like_torch(self, dtype):
        """inf, NaN, overflow after scaling, subnormals and ties: kept units as torch rounds them."""
        info = torch.finfo(dtype)
        values = [float("inf"), -float("inf"), float("nan"), info.max, -info.max, info.tiny, info.tiny / 4, 1 + info.eps / 2, -0.0, 1.0]
        x = torch.tensor(values * 30, dtype=dtype)[: 2 * 3 * 7 * 7].reshape(2, 3, 7, 7)
        geometry = _geometry(fused.CONTRACT, 7, 7, 3, 0.1)
        seeds, _ = KERNEL.sample(3, 6, geometry)
        for scale in (1.5, 3.0, 1.0000001):
            out = torch.empty_like(x)
            KERNEL.apply(x, out, seeds, 1, geometry, scale)
            torch.testing.assert_close(out, _reference(x, seeds, geometry, 1, scale), rtol=0, atol=0, equal_nan=True)

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_ties_round_to_even_like_torch(self, dtype):
        """x * 1.5 needs at most one bit more than the type holds, so each of its inexact products
        is an exact tie (x * 1.25: some are), which the vector loops must round to even."""
        x = torch.randn(4, 16, 14, 14, generator=torch.Generator().manual_seed(0)).to(dtype)
        geometry = _geometry(fused.CONTRACT, 14, 14, 7, 0.1)
        seeds, _ = KERNEL.sample(5, 64, geometry)
        for scale in (1.5, 1.25):
            exact = x.double() * scale
            assert float((exact != exact.to(dtype).double()).double().mean()) > 0.2  # many products are inexact
            out = torch.empty_like(x)
            KERNEL.apply(x, out, seeds, 1, geometry, scale)
            assert torch.equal(out, _reference(x, seeds, geometry, 1, scale))

    # (7, 7, 7): every block is its whole map: zeros written without reading x (float32), or
    # after scaling a chunk of maps (float16).
    @pytest.mark.parametrize(("h", "w", "k", "p"), [(5, 7, 3, 0.4), (7, 7, 7, 0.3)])
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
    def test_long_spans_and_unaligned_maps(self, h, w, k, p, dtype):
        """Many odd-sized maps: spans cut across maps and across the maps of a shared mask, and
        maps start off 32-byte boundaries."""
        if not KERNEL.supports(dtype):
            pytest.skip(f"this build has no {dtype}")
        x = torch.randn(7, 301, h, w).to(dtype)
        geometry = _geometry(fused.CONTRACT, h, w, k, p)
        for maps_per_mask in (1, 301):
            seeds, _ = KERNEL.sample(8, x.numel() // (h * w * maps_per_mask), geometry)
            assert seeds.flat.numel() > 0
            out = torch.empty_like(x)
            KERNEL.apply(x, out, seeds, maps_per_mask, geometry, 0.75)
            assert torch.equal(out, _reference(x, seeds, geometry, maps_per_mask, 0.75))

    def test_dropped_units_are_zero_even_for_inf_and_nan(self):
        x = torch.full((2, 3, 7, 7), float("inf"))
        x[0, 0, 0, 0] = float("nan")
        geometry = _geometry(fused.CONTRACT, 7, 7, 7, 0.5)._replace(gamma=1.0)  # every map dropped whole
        for maps_per_mask in (1, 3):
            seeds, _ = KERNEL.sample(1, 6 // maps_per_mask, geometry)
            out = torch.empty_like(x)
            KERNEL.apply(x, out, seeds, maps_per_mask, geometry, 2.0)
            assert bool((out == 0).all()) and not bool(out.signbit().any())


class TestPlanDrop:
    """Plan.drop, the no-autograd path (sample, count, scale and apply in one kernel call): the
    same result as sample then apply."""

    @pytest.mark.parametrize("threads", [1, 2])
    @pytest.mark.parametrize(("shape", "k", "maps_per_mask"), [((4, 3, 14, 14), 5, 1), ((4, 3, 14, 14), 5, 3),
                                                               ((16, 64, 14, 14), 5, 1), ((16, 64, 14, 14), 5, 64),
                                                               ((512, 4, 14, 14), 5, 4), ((8, 32, 28, 28), 7, 1)])
    @pytest.mark.parametrize("inplace", [False, True])
    def test_equals_sample_then_apply(self, shape, k, maps_per_mask, inplace, threads):
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        n, c, h, w = shape
        plan = KERNEL.plan(_geometry(fused.CONTRACT, h, w, k, 0.3), n * c // maps_per_mask, maps_per_mask, x.dtype)
        before = torch.get_num_threads()
        try:
            torch.set_num_threads(threads)
            seeds, dropped = plan.sample(77)
            expected = torch.empty_like(x)
            plan.apply(x, expected, seeds, spec.kept_scale_of_count(dropped * maps_per_mask, x.numel()))
            out = x.clone() if inplace else torch.empty_like(x)
            scale = plan.drop(77, out if inplace else x, out, spec.kept_scale_of_count)
        finally:
            torch.set_num_threads(before)
        assert torch.equal(out, expected) and scale == spec.kept_scale_of_count(dropped * maps_per_mask, x.numel())

    def test_scale_of_is_asked_once_with_the_count_and_the_units(self):
        x = torch.randn(8, 16, 14, 14)
        plan = KERNEL.plan(_geometry(fused.CONTRACT, 14, 14, 7, 0.2), 8, 16, x.dtype)
        _, dropped = plan.sample(3)
        asked = []
        scale = plan.drop(3, x, torch.empty_like(x), lambda count, units: asked.append((count, units)) or 1.5)
        assert asked == [(dropped * 16, x.numel())] and scale == 1.5

    # 8 sampling groups (2 threads: the seeds are joined) and 32 (each thread applies its own)
    @pytest.mark.parametrize("samples", [8, 32])
    def test_an_exception_in_scale_of_propagates_and_nothing_is_written(self, samples):
        x = torch.randn(samples, 16, 14, 14)
        plan = KERNEL.plan(_geometry(fused.CONTRACT, 14, 14, 7, 0.2), samples * 16, 1, x.dtype)
        out = torch.full_like(x, 7.0)

        def broken(count: int, units: int) -> float:
            raise RuntimeError("no scale today")

        with pytest.raises(RuntimeError, match="no scale today"):
            plan.drop(3, x, out, broken)
        with pytest.raises(ValueError, match="finite scale"):
            plan.drop(3, x, out, lambda count, units: float("nan"))
        assert bool((out == 7.0).all())
        plan.drop(3, x, out, spec.kept_scale_of_count)  # and the next call works
        assert not bool((out == 7.0).any())

    @pytest.mark.parametrize("scale", [float("nan"), float("inf"), -1.0, 1e39])
    def test_apply_refuses_a_scale_that_is_not_finite_and_non_negative(self, scale):
        x = torch.randn(2, 3, 14, 14)
        plan = KERNEL.plan(_geometry(fused.CONTRACT, 14, 14, 7, 0.2), 6, 1, x.dtype)
        seeds, _ = plan.sample(1)
        with pytest.raises(ValueError, match="finite"):
            plan.apply(x, torch.empty_like(x), seeds, scale)

    def test_a_smaller_team_than_asked_gives_the_same_output(self, tmp_path):
        """OMP_THREAD_LIMIT=1 caps the team below torch's 2 threads: shares follow the team."""
        script = textwrap.dedent(
            """
            import sys, torch
            from dropblock_bench.implementations import fused
            torch.set_num_threads(2)
            x = torch.randn(32, 16, 14, 14, generator=torch.Generator().manual_seed(0))
            torch.save(fused.drop_block2d(x, 0.2, 7, generator=torch.Generator().manual_seed(4)), sys.argv[1])
            """
        )
        target = tmp_path / "out.pt"
        subprocess.run([sys.executable, "-c", script, str(target)], check=True, env={**os.environ, "OMP_THREAD_LIMIT": "1"})
        x = torch.randn(32, 16, 14, 14, generator=torch.Generator().manual_seed(0))
        assert torch.equal(torch.load(target), fused.drop_block2d(x, 0.2, 7, generator=torch.Generator().manual_seed(4)))

    def test_calls_from_several_threads_each_get_their_own_result(self):
        x = torch.randn(16, 8, 28, 28)
        plan = KERNEL.plan(_geometry(fused.CONTRACT, 28, 28, 7, 0.2), 128, 1, x.dtype)
        expected = {}
        for seed in range(8):
            expected[seed] = torch.empty_like(x)
            plan.drop(seed, x, expected[seed], spec.kept_scale_of_count)
        outputs = {seed: torch.empty_like(x) for seed in range(8)}
        workers = [threading.Thread(target=lambda s=seed: [plan.drop(s, x, outputs[s], spec.kept_scale_of_count) for _ in range(5)])
                   for seed in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert all(torch.equal(outputs[seed], expected[seed]) for seed in range(8))


class TestDispatch:
    def test_contiguous_cpu_input_takes_the_kernel(self, monkeypatch):
        """Eager calls with no gradient to record and the operator's kernel take kernel_drop;
        eager calls that record one sample on the kernel once and keep the seeds."""
        calls = []
        masks = []

        class RecordedMask(fused_backends.KernelMask):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                masks.append(self)

        monkeypatch.setattr(fused_backends, "KernelMask", RecordedMask)
        real_kernel_drop = fused_backends.kernel_drop

        def recorded_kernel_drop(x, *args, **kwargs):
            calls.append(args)
            return real_kernel_drop(x, *args, **kwargs)

        monkeypatch.setattr(fused_backends, "kernel_drop", recorded_kernel_drop)
        x = torch.randn(2, 3, 8, 8)
        fused.drop_block2d(x, 0.2, 3)
        fused.drop_block2d_shared(x, 0.2, 3)
        fused_ops.drop_block2d(x, torch.tensor(3), 0.2, 3, False)
        assert len(calls) == 3 and not masks
        fused.drop_block2d(x.clone().requires_grad_(), 0.2, 3)
        assert len(calls) == 3 and len(masks) == 1

    def test_channels_last_stays_channels_last(self):
        x = torch.randn(2, 3, 10, 10).to(memory_format=torch.channels_last)
        out = fused.drop_block2d(x, 0.3, 3, generator=torch.Generator().manual_seed(1))
        assert out.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(out, fused.drop_block2d(x.contiguous(), 0.3, 3, generator=torch.Generator().manual_seed(1)))

    def test_backward_replays_the_seeds_without_sampling_again(self, monkeypatch):
        """Backward on the kernel applies the forward's seed positions to the gradient: no
        second sampling pass; the positions (one int64 per seed) are what autograd saves."""
        x = torch.randn(4, 8, 14, 14, requires_grad=True)
        saved: list[torch.Tensor] = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
            out = fused.drop_block2d(x, 0.3, 3, generator=torch.Generator().manual_seed(2))
        assert len(saved) == 1 and saved[0].dtype == torch.int64 and 0 < saved[0].numel() < x.numel() // 8
        sampled = []
        real_sample = fused_cpu.Plan.sample
        monkeypatch.setattr(fused_cpu.Plan, "sample", lambda plan, seed: sampled.append(seed) or real_sample(plan, seed))
        out.sum().backward()
        assert not sampled
        scale = float(x.grad.max())
        assert torch.equal(x.grad, torch.where(out == 0, 0.0, scale)) and scale > 1.0
        torch.testing.assert_close(out, x.detach() * x.grad)

    def test_recording_a_gradient_gives_the_same_output(self):
        """The sample-then-apply path (gradient recorded) and the one-call path agree bitwise
        for the same seed, per-channel and shared, contiguous and channels-last."""
        for function in (fused.drop_block2d, fused.drop_block2d_shared):
            for layout in (torch.contiguous_format, torch.channels_last):
                x = torch.randn(4, 8, 14, 14).to(memory_format=layout)
                plain = function(x, 0.3, 3, generator=torch.Generator().manual_seed(7))
                recorded = function(x.clone().requires_grad_(), 0.3, 3, generator=torch.Generator().manual_seed(7))
                assert torch.equal(plain, recorded.detach())
                assert recorded.is_contiguous(memory_format=layout)

    def test_generator_state_advances(self):
        generator = torch.Generator().manual_seed(0)
        x = torch.ones(2, 4, 14, 14)
        assert not torch.equal(fused.drop_block2d(x, 0.3, 3, generator=generator), fused.drop_block2d(x, 0.3, 3, generator=generator))


HUGE_PAGE = 2 << 20
THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def _thp_advice_works() -> bool:
    """Linux with transparent huge pages in "madvise" or "always" mode."""
    try:
        return "[never]" not in THP_MODE.read_text()
    except OSError:
        return False


def _vm_flags(address: int) -> set[str]:
    """The VmFlags of the mapping of this process that holds ``address`` (/proc/self/smaps)."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and ":" not in head:
            start, end = (int(part, 16) for part in head.split("-"))
            inside = start <= address < end
        elif inside and line.startswith("VmFlags:"):
            return set(line.split()[1:])
    raise AssertionError(f"no mapping holds {address:#x}")


class TestHugePageAdvice:
    """Out-of-place outputs are advised onto transparent huge pages: the whole 2 MiB pages inside
    the tensor, nothing else, contents untouched, and not at all with DBENCH_HUGE_PAGES=0."""

    @pytest.mark.skipif(not _thp_advice_works(), reason="needs Linux with transparent huge pages not 'never'")
    def test_advises_the_whole_huge_pages_inside_the_tensor(self, monkeypatch):
        monkeypatch.delenv(HUGE_PAGES_ENV, raising=False)
        tensor = torch.arange(3 * HUGE_PAGE // 4 + 12345, dtype=torch.float32)  # ~6 MiB, filled
        before = tensor.clone()
        start, end = tensor.data_ptr(), tensor.data_ptr() + tensor.numel() * 4
        first, last = -(-start // HUGE_PAGE) * HUGE_PAGE, end // HUGE_PAGE * HUGE_PAGE
        assert KERNEL.advise_huge_pages(tensor) == last - first > 0
        assert "hg" in _vm_flags(first) and "hg" in _vm_flags(last - 1)
        assert torch.equal(tensor, before)

    def test_nothing_when_no_whole_huge_page_fits(self):
        assert KERNEL.advise_huge_pages(torch.empty(1000)) == 0

    @pytest.mark.parametrize("value", ["0", "off", "False"])
    def test_the_environment_turns_it_off(self, monkeypatch, value):
        monkeypatch.setenv(HUGE_PAGES_ENV, value)
        assert KERNEL.advise_huge_pages(torch.empty(4 * HUGE_PAGE)) == 0

    def test_out_of_place_outputs_are_advised_and_unchanged_by_it(self, monkeypatch):
        advised: list[int] = []
        real = KERNEL.advise_huge_pages
        monkeypatch.setattr(KERNEL, "advise_huge_pages", lambda t: advised.append(t.data_ptr()) or real(t))
        x = torch.randn(4, 64, 56, 56, generator=torch.Generator().manual_seed(0))  # 3.2 MiB
        outputs = {}
        for setting in ("1", "0"):
            monkeypatch.setenv(HUGE_PAGES_ENV, setting)
            for name, function in (("fused", fused.drop_block2d), ("shared", fused.drop_block2d_shared)):
                outputs[name, setting] = function(x, 0.2, 5, generator=torch.Generator().manual_seed(3))
                assert advised[-1] == outputs[name, setting].data_ptr()
        assert torch.equal(outputs["fused", "1"], outputs["fused", "0"])
        assert torch.equal(outputs["shared", "1"], outputs["shared", "0"])
        calls = len(advised)
        fused.drop_block2d(x, 0.2, 5, inplace=True)
        assert len(advised) == calls  # in place: x is not a fresh output

    def test_backward_outputs_are_advised(self, monkeypatch):
        advised: list[int] = []
        real = KERNEL.advise_huge_pages
        monkeypatch.setattr(KERNEL, "advise_huge_pages", lambda t: advised.append(t.data_ptr()) or real(t))
        x = torch.randn(2, 8, 14, 14, requires_grad=True)
        fused.drop_block2d(x, 0.2, 3).sum().backward()
        assert advised[-1] == x.grad.data_ptr() and len(advised) == 2


@pytest.fixture(scope="module")
def portable_kernel(tmp_path_factory) -> fused_cpu.CpuKernel:
    """The kernel built without -march=native or OpenMP: the scalar log and element loops any
    C11 compiler takes, single-threaded."""
    compiler = fused_cpu._compiler()
    target = tmp_path_factory.mktemp("portable") / "fused_cpu.so"
    source = Path(fused_cpu.__file__).with_name("fused_cpu.c")
    complaint = fused_cpu._build(compiler, source, (), target)
    assert complaint is None, complaint
    return fused_cpu.CpuKernel(ctypes.CDLL(str(target)), target)


class TestPortableBuild:
    """The code paths without AVX2, F16C or OpenMP give the same seeds and the same results."""

    @pytest.mark.parametrize(("h", "w", "k", "p"), GEOMETRIES)
    def test_same_seeds_and_counts_as_the_native_build(self, portable_kernel, h, w, k, p):
        geometry = _geometry(fused.CONTRACT, h, w, k, p)
        native, portable = KERNEL.sample(21, 3000, geometry), portable_kernel.sample(21, 3000, geometry)
        assert torch.equal(native[0].flat, portable[0].flat) and native[1] == portable[1]

    def test_same_counts_for_large_blocks(self, portable_kernel):
        """Blocks of side 1000 overlapping heavily (up to 8 x 10^6 units of overlap a block, and
        masks counted again by their bitset): the native build's wide count must still equal
        the portable build's bitset count."""
        geometry = fused_cpu.SeedGeometry(height=1001, width=1001, k=1000, top0=0, rows=2, left0=0, cols=2, gamma=0.5)
        native, portable = KERNEL.sample(3, 20000, geometry), portable_kernel.sample(3, 20000, geometry)
        assert torch.equal(native[0].flat, portable[0].flat) and native[1] == portable[1]
        assert native[0].flat.numel() > 30_000

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
    @pytest.mark.parametrize("maps_per_mask", [1, 3])
    def test_apply_equals_painting(self, portable_kernel, dtype, maps_per_mask):
        if not portable_kernel.supports(dtype):
            pytest.skip(f"the portable build has no {dtype}")
        for geometry in (_geometry(fused.CONTRACT, 14, 14, 7, 0.3), CLIPPED):
            x = torch.randn(4, 3, geometry.height, geometry.width, generator=torch.Generator().manual_seed(0)).to(dtype)
            seeds, dropped = portable_kernel.sample(5, 12 // maps_per_mask, geometry)
            assert dropped == int(_painted(seeds, geometry).sum())
            out = torch.empty_like(x)
            portable_kernel.apply(x, out, seeds, maps_per_mask, geometry, 1.2345678)
            assert torch.equal(out, _clipped_reference(x, seeds, geometry, maps_per_mask, 1.2345678))

    @pytest.mark.parametrize("maps_per_mask", [1, 16])
    def test_drop_equals_the_native_build(self, portable_kernel, maps_per_mask):
        """One region without OpenMP: sample, scale, apply in sequence; same output."""
        x = torch.randn(8, 16, 14, 14, generator=torch.Generator().manual_seed(0))
        geometry = _geometry(fused.CONTRACT, 14, 14, 7, 0.3)
        outputs = []
        for kernel in (KERNEL, portable_kernel):
            out = torch.empty_like(x)
            kernel.plan(geometry, 128 // maps_per_mask, maps_per_mask, x.dtype).drop(9, x, out, spec.kept_scale_of_count)
            outputs.append(out)
        assert torch.equal(*outputs) and bool((outputs[0] == 0).any())


BUILD_CHECK = textwrap.dedent(
    """
    import torch
    from dropblock_bench.implementations import fused, fused_cpu
    kernel = fused_cpu.load()
    x = torch.ones(2, 3, 9, 9)
    out = fused.drop_block2d(x, 0.3, 3, generator=torch.Generator().manual_seed(0))
    print(kernel is None, "|", fused_cpu.status(), "|", bool((out == 0).any()))
    """
)


@pytest.mark.parametrize(
    ("env", "expected"),
    [({"DBENCH_CPU_KERNEL": "0"}, "disabled by DBENCH_CPU_KERNEL"), ({"CC": "/bin/false"}, "build failed")],
    ids=["disabled", "compiler-fails"],
)
def test_without_the_kernel_fused_falls_back_to_torch(tmp_path, env, expected):
    environment = {**os.environ, "DBENCH_CACHE_DIR": str(tmp_path), **env}
    done = subprocess.run([sys.executable, "-c", BUILD_CHECK], env=environment, check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    unavailable, status, dropped_some = (part.strip() for part in done.stdout.strip().split("|"))
    assert unavailable == "True" and expected in status and dropped_some == "True"


def test_builds_into_an_empty_cache(tmp_path):
    environment = {**os.environ, "DBENCH_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", BUILD_CHECK], env=environment, check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("False") and "compiled kernel" in done.stdout
    assert list((tmp_path / "kernels").glob("fused_cpu-*.so"))
