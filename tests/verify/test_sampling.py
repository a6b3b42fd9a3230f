"""How the checks run an implementation: seeds derived per step, reproducible calls, masks
taken per the declared sharing and in bounded chunks."""

from __future__ import annotations

import torch
from dropblock_bench.implementations import paper

from dropblock_bench import spec
from dropblock_bench.registry import Implementation
from dropblock_bench.verify import sampling
from dropblock_bench.verify.settings import Case

CASE = Case(9, 13, 4, 0.3)


def test_derived_seeds_are_stable_distinct_and_63_bit():
    seeds = {sampling.derive_seed(seed, *labels) for seed in (0, 1) for labels in [("law",), ("law", "a"), ("ref",)]}
    assert len(seeds) == 6
    assert all(0 <= s < 2**63 for s in seeds)
    # The same in every process and on every machine (a hash of the labels, not Python's hash()).
    assert sampling.derive_seed(0, "law") == 2393785254491654054
    assert sampling.derive_seed(5, "law", 2) == 4730927643307555845


def test_calls_are_reproducible_with_and_without_a_generator():
    x = torch.ones(2, 3, 9, 13)
    with_generator = Implementation(name="with", target=paper.drop_block2d)
    global_rng = Implementation(name="global", target=lambda x, p, k: paper.drop_block2d(x, p, k),  # no generator=
                                supports_generator=False)
    for impl in (with_generator, global_rng):
        first, again, other = (sampling.call_seeded(impl, impl.load(), x, 0.3, 4, seed) for seed in (7, 7, 8))
        assert torch.equal(first, again) and not torch.equal(first, other)


def _recording(contract: spec.Contract) -> tuple[Implementation, list[torch.Size]]:
    shapes: list[torch.Size] = []

    def fn(x, p, block_size, generator=None):
        shapes.append(x.shape)
        return paper.drop_block2d(x, p, block_size, generator=generator) if contract.mask == "per-channel" else (
            x * (torch.rand(x.shape[0], 1, *x.shape[2:], generator=generator) > p))

    return Implementation(name="rec", target=fn, contract=contract), shapes


def test_per_channel_masks_use_every_channel_over_many_bounded_calls(monkeypatch):
    monkeypatch.setattr(sampling, "UNITS_PER_CALL", 4 * CASE.height * CASE.width * 10)  # at most 10 samples a call
    impl, shapes = _recording(spec.PAPER_CONTRACT)
    sample = sampling.sample_case(impl, impl.load(), CASE, 1001, min_calls=8, seed=3)
    assert sample.masks.shape[1:] == (9, 13) and sample.masks.dtype == torch.bool
    assert sample.maps >= 1001 and sample.calls == len(shapes) >= 8
    batches = [s[0] for s in shapes]
    assert all(s[1] == 4 for s in shapes) and max(batches) <= 10
    assert batches[3] == 1 and all(b % 2 == 1 for b in batches)  # every 4th call batch 1, the others odd
    assert sample.call_of_map.tolist() == [call for call, b in enumerate(batches) for _ in range(4 * b)]
    first = sample.masks[sample.call_of_map == 0]
    assert not torch.equal(first, sample.masks[sample.call_of_map == 2])  # each call has its own seed


def test_shared_masks_take_one_channel_per_sample():
    shared = spec.Contract(mask="shared")
    impl, shapes = _recording(shared)
    sample = sampling.sample_case(impl, impl.load(), CASE, 50, min_calls=4, seed=3)
    assert sample.maps == sum(s[0] for s in shapes) >= 50 and all(s[1] == 2 for s in shapes)


def test_batch_shared_contracts_take_one_sample_per_call():
    impl, shapes = _recording(spec.Contract(batch="shared"))
    sample = sampling.sample_case(impl, impl.load(), CASE, 160, min_calls=4, seed=3)
    channels = sampling.BATCH_SHARED_CHANNELS  # one sample's channels are all a call gives: many of them
    assert sample.maps == channels * sample.calls and sample.calls == len(shapes) >= 160 // channels


def test_layouts_give_the_case_shape_in_their_memory_format():
    from dropblock_bench.verify.settings import Layout

    assert sampling.make_input((2, 3, 5, 7), Layout.CONTIGUOUS).is_contiguous()
    last = sampling.make_input((2, 3, 5, 7), Layout.CHANNELS_LAST)
    assert last.shape == (2, 3, 5, 7) and last.is_contiguous(memory_format=torch.channels_last)
    strided = sampling.make_input((2, 3, 5, 7), Layout.STRIDED)
    assert strided.shape == (2, 3, 5, 7) and not strided.is_contiguous() and bool((strided == 1).all())


def test_maps_with_nan_are_counted():
    impl = Implementation(name="nan", target=lambda x, p, k, generator=None: x * float("nan"))
    sample = sampling.sample_case(impl, impl.load(), CASE, 20, min_calls=2, seed=0)
    assert sample.nonfinite_maps == sample.maps
