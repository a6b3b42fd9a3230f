"""The contract math against brute-force enumeration on tiny maps, and its invariants."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from dropblock_bench import spec
from dropblock_bench.spec import Contract

ALL_CONTRACTS = [
    Contract(mask=m, seeds=s, gamma=g, norm=n)
    for m, s, g, n in itertools.product(spec.MaskSharing, spec.SeedRegion, spec.GammaRule, spec.Normalisation)
]

# (H, W, k): square and not, odd and even k, k equal to and above the map size.
TINY_GEOMETRIES = [(3, 3, 1), (3, 4, 2), (4, 3, 3), (2, 5, 2), (3, 3, 3), (2, 3, 4), (4, 4, 2), (1, 4, 2)]


def _enumerate_outcomes(
    seeds_anywhere: bool,
    naive_gamma: bool,
    p: float,
    h: int,
    w: int,
    k: int,
    extra_row_on_top: bool = False,
    corner: bool = False,
    per_axis: bool = False,
):
    """Every seed subset with its probability and the set of units it drops. Independent of spec.

    ``extra_row_on_top``: even blocks reach one further up-left; ``corner``: the seed is the
    block's top-left corner; ``per_axis``: the block is min(k, H) x min(k, W)."""
    if per_axis:
        kh, kw = min(k, h), min(k, w)
        g = p / k**2 if naive_gamma else p * h * w / (kh * kw * (h - kh + 1) * (w - kw + 1))
    else:
        kc = min(k, h, w)
        g = p / k**2 if naive_gamma else p * h * w / (kc**2 * (h - kc + 1) * (w - kc + 1))
        kh = kw = k if seeds_anywhere else kc

    def above(size: int) -> int:  # rows (columns) a block reaches above (left of) its seed
        return 0 if corner else size // 2 if extra_row_on_top else (size - 1) // 2

    def cells(r: int, c: int) -> set[tuple[int, int]]:
        return {(r - above(kh) + i, c - above(kw) + j) for i in range(kh) for j in range(kw)}

    inside = {(r, c) for r in range(h) for c in range(w)}
    positions = [pos for pos in sorted(inside) if seeds_anywhere or cells(*pos) <= inside]
    for chosen in itertools.product((False, True), repeat=len(positions)):
        n_seeds = sum(chosen)
        weight = g**n_seeds * (1 - g) ** (len(positions) - n_seeds)
        yield weight, set().union(*(cells(*pos) for pos, on in zip(positions, chosen) if on)) & inside


def _brute_force_map(seeds_anywhere: bool, naive_gamma: bool, p: float, h: int, w: int, k: int, **variant: bool) -> list[list[float]]:
    """Drop probability of every unit, by enumerating every seed subset."""
    if p == 1.0:
        return [[1.0] * w for _ in range(h)]
    probability = [[0.0] * w for _ in range(h)]
    for weight, dropped in _enumerate_outcomes(seeds_anywhere, naive_gamma, p, h, w, k, **variant):
        for r, c in dropped:
            probability[r][c] += weight
    return probability


@pytest.mark.parametrize(("h", "w", "k"), TINY_GEOMETRIES)
@pytest.mark.parametrize("p", [0.1, 0.6])
@pytest.mark.parametrize("seeds", list(spec.SeedRegion))
def test_drop_count_variance_matches_brute_force(h, w, k, p, seeds):
    moments = [0.0, 0.0]
    for weight, dropped in _enumerate_outcomes(seeds == "anywhere", False, p, h, w, k):
        moments[0] += weight * len(dropped)
        moments[1] += weight * len(dropped) ** 2
    variance = moments[1] - moments[0] ** 2
    assert spec.drop_count_variance(Contract(seeds=seeds), p, h, w, k) == pytest.approx(variance, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("h", "w", "k"), TINY_GEOMETRIES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("seeds", list(spec.SeedRegion))
@pytest.mark.parametrize("gamma_rule", list(spec.GammaRule))
def test_drop_probability_map_matches_brute_force(h, w, k, p, seeds, gamma_rule):
    contract = Contract(seeds=seeds, gamma=gamma_rule)
    expected = torch.tensor(
        _brute_force_map(seeds == "anywhere", gamma_rule == "naive", p, h, w, k), dtype=torch.float64
    )
    got = spec.drop_probability_map(contract, p, h, w, k)
    assert got.shape == (h, w)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    assert spec.expected_drop_rate(contract, p, h, w, k) == pytest.approx(expected.mean().item(), abs=1e-12)


@pytest.mark.parametrize(("h", "w", "k"), [(3, 4, 2), (4, 4, 2), (2, 5, 4), (3, 3, 2)])
def test_valid_map_does_not_depend_on_even_centring(h, w, k):
    for gamma_rule in spec.GammaRule:
        other_centring = _brute_force_map(False, gamma_rule == "naive", 0.4, h, w, k, extra_row_on_top=True)
        ours = spec.drop_probability_map(Contract(gamma=gamma_rule), 0.4, h, w, k)
        torch.testing.assert_close(ours, torch.tensor(other_centring, dtype=torch.float64), rtol=0, atol=1e-12)


VARIANTS = {  # contract fields -> the brute force's keyword for the same geometry
    ("up-left", "min"): {"extra_row_on_top": True},
    ("down-right", "min"): {"corner": True},
    ("centre", "per-axis"): {"per_axis": True},
    ("up-left", "per-axis"): {"extra_row_on_top": True, "per_axis": True},
    ("down-right", "per-axis"): {"corner": True, "per_axis": True},
}


@pytest.mark.slow
@pytest.mark.parametrize(("h", "w", "k"), TINY_GEOMETRIES)
@pytest.mark.parametrize("p", [0.1, 0.6])
@pytest.mark.parametrize("seeds", list(spec.SeedRegion))
@pytest.mark.parametrize(("anchor", "clamp"), list(VARIANTS))
def test_anchors_and_clamps_match_brute_force(h, w, k, p, seeds, anchor, clamp):
    """Map, rate and variance under every anchor and clamp, against enumeration."""
    contract = Contract(seeds=seeds, anchor=anchor, clamp=clamp)
    variant = VARIANTS[(anchor, clamp)]
    expected = torch.tensor(_brute_force_map(seeds == "anywhere", False, p, h, w, k, **variant), dtype=torch.float64)
    torch.testing.assert_close(spec.drop_probability_map(contract, p, h, w, k), expected, rtol=1e-12, atol=1e-12)
    moments = [0.0, 0.0]
    for weight, dropped in _enumerate_outcomes(seeds == "anywhere", False, p, h, w, k, **variant):
        moments[0] += weight * len(dropped)
        moments[1] += weight * len(dropped) ** 2
    assert spec.expected_drop_rate(contract, p, h, w, k) * h * w == pytest.approx(moments[0], abs=1e-9)
    assert spec.drop_count_variance(contract, p, h, w, k) == pytest.approx(moments[1] - moments[0] ** 2, rel=1e-9, abs=1e-12)


def test_per_axis_gamma_and_block_shape():
    timm_like = Contract(mask="shared", seeds="anywhere", anchor="up-left", clamp="per-axis")
    assert spec.painted_block_shape(timm_like, 5, 9, 7) == (5, 7)
    assert spec.gamma(timm_like, 0.2, 5, 9, 7) == pytest.approx(0.2 * 45 / (5 * 7 * 1 * 3))
    with pytest.raises(ValueError, match="not square"):
        spec.painted_block_size(timm_like, 5, 9, 7)
    assert spec.block_extent(4, "up-left") == (2, 1)
    assert spec.block_extent(4, "down-right") == (0, 3)


def test_batch_shared_reference_repeats_one_draw():
    contract = Contract(batch="shared")
    mask = spec.reference_drop_mask(contract, (5, 3, 9, 9), 0.3, 3, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (5, 3, 9, 9)
    assert bool((mask == mask[:1]).all()) and not bool((mask[:, 0] == mask[:, 1]).all())


def test_short_form_names_only_the_extra_fields_that_depart():
    assert str(spec.PAPER_CONTRACT) == "mask=per-channel, seeds=valid, gamma=paper, norm=batch"
    assert str(Contract(anchor="up-left", batch="shared")).endswith("norm=batch, anchor=up-left, batch=shared")


def test_anywhere_map_follows_the_documented_even_centring():
    # k = 2: a seed paints itself and the unit below/right, so row 0 is covered by fewer seeds.
    contract = Contract(seeds="anywhere", gamma="naive")
    counts = spec.coverage_counts(contract, 4, 2)
    assert counts == [1, 2, 2, 2]
    assert spec.block_extent(2) == (0, 1)
    assert spec.block_extent(7) == (3, 3)


def test_gamma_formulas():
    paper = spec.PAPER_CONTRACT
    assert spec.gamma(paper, 0.1, 14, 14, 7) == pytest.approx(0.1 * 196 / (49 * 64))
    assert spec.gamma(paper, 0.1, 10, 20, 3) == pytest.approx(0.1 * 200 / (9 * 8 * 18))
    # k clamped to min(H, W): 7 -> 5 on a 5 x 9 map.
    assert spec.gamma(paper, 0.2, 5, 9, 7) == pytest.approx(0.2 * 45 / (25 * 1 * 5))
    assert spec.gamma(Contract(gamma="naive"), 0.1, 14, 14, 7) == pytest.approx(0.1 / 49)


@settings(max_examples=200, deadline=None)
@given(
    p=st.floats(0.0, 1.0),
    h=st.integers(1, 64),
    w=st.integers(1, 64),
    k=st.integers(1, 80),
)
def test_paper_gamma_never_exceeds_p(p, h, w, k):
    assert 0.0 <= spec.gamma(spec.PAPER_CONTRACT, p, h, w, k) <= p + 1e-15


@settings(max_examples=100, deadline=None)
@given(
    p=st.floats(0.0, 1.0),
    h=st.integers(1, 24),
    w=st.integers(1, 24),
    k=st.integers(1, 30),
    contract=st.sampled_from(ALL_CONTRACTS),
)
def test_map_is_a_probability_and_rate_is_its_mean(p, h, w, k, contract):
    probability = spec.drop_probability_map(contract, p, h, w, k)
    assert bool(((probability >= 0) & (probability <= 1)).all())
    assert spec.expected_drop_rate(contract, p, h, w, k) == pytest.approx(probability.mean().item(), abs=1e-12)


def test_valid_seed_region_and_large_blocks():
    paper = spec.PAPER_CONTRACT
    assert spec.seed_rows(paper, 14, 7) == range(3, 11)  # H - k + 1 = 8 positions
    assert spec.seed_rows(paper, 9, 4) == range(1, 7)  # even k: 6 positions
    assert spec.painted_block_size(paper, 5, 9, 7) == 5
    assert spec.painted_block_size(Contract(seeds="anywhere"), 5, 9, 7) == 7
    # A block as large as the map: one seed position, certain coverage of every unit.
    assert spec.coverage_counts(paper, 7, 7) == [1] * 7


def test_p_one_drops_everything_for_every_contract():
    for contract in ALL_CONTRACTS:
        assert spec.expected_drop_rate(contract, 1.0, 5, 7, 3) == 1.0


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "0.1", True])
def test_bad_probability_is_refused(bad):
    with pytest.raises(ValueError, match="drop probability"):
        spec.gamma(spec.PAPER_CONTRACT, bad, 5, 5, 3)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_block_size_is_refused(bad):
    with pytest.raises(ValueError, match="block_size"):
        spec.gamma(spec.PAPER_CONTRACT, 0.1, 5, 5, bad)


def test_contract_fields_accept_strings_and_refuse_typos():
    contract = Contract(mask="shared", seeds="anywhere", gamma="naive", norm="none")
    assert contract.mask is spec.MaskSharing.SHARED
    assert contract.departures_from_paper() == ("mask", "seeds", "gamma", "norm")
    assert spec.PAPER_CONTRACT.departures_from_paper() == ()
    with pytest.raises(ValueError, match="per-channel, shared"):
        Contract(mask="per_channel")
    assert spec.PAPER_CONTRACT.replace(norm="sample", mask=None).as_dict() == {
        "mask": "per-channel",
        "seeds": "valid",
        "gamma": "paper",
        "norm": "sample",
        "anchor": "centre",
        "clamp": "min",
        "batch": "per-sample",
    }
    with pytest.raises(ValueError, match="centre, up-left, down-right"):
        Contract(anchor="center")


class TestNormalisationScale:
    dropped = torch.tensor([[[[True, False], [False, False]]], [[[True, True], [True, False]]]])  # (2, 1, 2, 2)

    def test_batch_counts_the_whole_batch(self):
        scale = spec.normalisation_scale(spec.PAPER_CONTRACT, self.dropped, 0.3, 1)
        assert scale.shape == () and scale.dtype == torch.float32
        assert scale.item() == pytest.approx(8 / 4)

    def test_sample_counts_each_sample(self):
        scale = spec.normalisation_scale(Contract(norm="sample"), self.dropped, 0.3, 1)
        assert scale.flatten().tolist() == pytest.approx([4 / 3, 4 / 1])

    def test_expected_and_none(self):
        expected = spec.normalisation_scale(Contract(norm="expected"), self.dropped, 0.3, 1)
        assert expected.item() == pytest.approx(1 / (1 - 0.3))
        assert spec.normalisation_scale(Contract(norm="none"), self.dropped, 0.3, 1).item() == 1.0

    def test_nothing_kept_gives_zero_not_inf(self):
        everything = torch.ones((2, 3, 4, 4), dtype=torch.bool)
        assert spec.normalisation_scale(spec.PAPER_CONTRACT, everything, 0.5, 2).item() == 0.0
        per_sample = spec.normalisation_scale(Contract(norm="sample"), everything, 0.5, 2)
        assert per_sample.flatten().tolist() == [0.0, 0.0]

    def test_counts_beyond_half_precision_are_exact(self):
        # 70,000 kept units: a float16 sum would overflow (max 65,504).
        dropped = torch.zeros((1, 1, 350, 400), dtype=torch.bool)
        dropped[..., :50, :] = True
        assert spec.normalisation_scale(spec.PAPER_CONTRACT, dropped, 0.1, 1).item() == pytest.approx(140000 / 120000)


@given(total=st.integers(1, 2**40), dropped_fraction=st.floats(0.0, 1.0))
def test_kept_scale_of_count_is_kept_scale_for_one_count(total, dropped_fraction):
    dropped = min(total, int(total * dropped_fraction))
    as_tensor = spec.kept_scale(torch.tensor(dropped), total).item()
    assert spec.kept_scale_of_count(dropped, total) == as_tensor
    assert spec.kept_scale_of_count(total, total) == 0.0


@pytest.mark.parametrize(
    "contract",
    [c for c in ALL_CONTRACTS if c.norm == "batch"]
    + [Contract(seeds=s, anchor=a, clamp=c) for s in spec.SeedRegion for a, c in VARIANTS],
    ids=str,
)
def test_reference_sampler_matches_the_exact_map(contract):
    """Per-position drop counts of the reference sampler are Binomial(n, map[i, j])."""
    h, w, k, p, n = 6, 9, 4, 0.3, 4000
    generator = torch.Generator().manual_seed(1234)
    dropped = spec.reference_drop_mask(contract, (n, 1, h, w), p, k, generator=generator)
    assert bool(spec.explained_by_blocks(contract, dropped, k).all())
    counts = dropped.sum(dim=(0, 1)).double()
    probability = spec.drop_probability_map(contract, p, h, w, k)
    # Two-sided binomial z-scores; Bonferroni over the positions at family-wise level 1e-3.
    z = (counts - n * probability) / (n * probability * (1 - probability)).clamp_min(1e-12).sqrt()
    bound = stats.norm.isf(1e-3 / (2 * h * w))
    assert z.abs().max().item() < bound


def test_explained_by_blocks_accepts_unions_and_rejects_the_rest():
    paper = spec.PAPER_CONTRACT
    mask = torch.zeros((1, 7, 7), dtype=torch.bool)
    mask[0, 1:4, 2:5] = True  # one 3 x 3 block inside the map
    mask[0, 3:6, 3:6] = True  # an overlapping one
    assert spec.explained_by_blocks(paper, mask, 3).tolist() == [True]
    broken = mask.clone()
    broken[0, 0, 0] = True  # a stray unit
    assert spec.explained_by_blocks(paper, broken, 3).tolist() == [False]
    edge = torch.zeros((1, 7, 7), dtype=torch.bool)
    edge[0, 0:2, 0:2] = True  # a block cut at the border
    assert spec.explained_by_blocks(paper, edge, 3).tolist() == [False]
    assert spec.explained_by_blocks(Contract(seeds="anywhere"), edge, 3).tolist() == [True]
    assert math.isclose(spec.expected_drop_rate(paper, 0.0, 7, 7, 3), 0.0)
