"""Matrix parsing, presets, expansion and sharding of `dbench run`."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dropblock_bench.run import matrix
from dropblock_bench.run.matrix import MatrixError, MatrixSpec, RunCase


def test_parsers_accept_good_input():
    assert matrix.parse_shape("32x256x56x56") == (32, 256, 56, 56)
    assert matrix.parse_shape("2X3*4x5") == (2, 3, 4, 5)
    assert matrix.parse_dtype("bf16") == "bfloat16" and matrix.parse_dtype("float16") == "float16"
    assert matrix.parse_device("cuda:1") == "cuda:1" and matrix.parse_device("CPU") == "cpu"
    assert matrix.parse_probability("0.25") == 0.25
    assert matrix.parse_block_size("7") == 7
    assert matrix.parse_mode("both") == ("forward", "backward")
    assert matrix.parse_shard("2/4") == (2, 4)
    assert matrix.split_values(["a,b", " c ", ""]) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("parser", "text", "message"),
    [
        (matrix.parse_shape, "32x256xx56", "sizes joined by x"),
        (matrix.parse_shape, "1x2x3x4x5x6x7", "sizes joined by x"),
        (matrix.parse_holes, "0", "positive integer"),
        (matrix.parse_shape, "32x0x5x5", "positive"),
        (matrix.parse_dtype, "int8", "unknown dtype"),
        (matrix.parse_device, "tpu", "unknown device"),
        (matrix.parse_probability, "1.5", "outside [0, 1]"),
        (matrix.parse_probability, "lots", "bad drop probability"),
        (matrix.parse_block_size, "0", "positive integer"),
        (matrix.parse_mode, "sideways", "unknown mode"),
        (matrix.parse_shard, "5/4", "I/N"),
    ],
)
def test_parsers_refuse_bad_input_with_a_clear_message(parser, text, message):
    with pytest.raises(MatrixError, match=re.escape(message)):
        parser(text)


def test_resnet50_preset_is_the_four_stage_shapes():
    stages = ((32, 256, 56, 56), (32, 512, 28, 28), (32, 1024, 14, 14), (32, 2048, 7, 7))
    assert matrix.PRESETS["dropblock2d"]["resnet50"].shapes == stages
    assert matrix.PRESETS["spatial-dropout"]["resnet50"].shapes == stages


def test_every_family_has_a_quick_preset_and_presets_take_the_familys_ranks():
    from dropblock_bench.families.catalog import FAMILIES

    assert set(matrix.PRESETS) == set(FAMILIES)
    for family, presets in matrix.PRESETS.items():
        assert "quick" in presets
        for preset in presets.values():
            for shape in preset.shapes:
                matrix.check_shape(shape, family)
            assert (preset.block_size > 0) == FAMILIES[family].takes_block


def test_the_presets_hold_the_shapes_each_family_is_used_at():
    assert (64, 197, 768) in matrix.PRESETS["drop-path"]["vit"].shapes
    assert (32, 96, 56, 56) in matrix.PRESETS["drop-path"]["convnext"].shapes
    assert matrix.PRESETS["cutout"]["cifar"] == matrix.Preset(((128, 3, 32, 32),), block_size=16)
    assert matrix.PRESETS["cutout"]["imagenet"].shapes == ((64, 3, 224, 224),)
    assert all(len(shape) == 5 for shape in matrix.PRESETS["dropblock3d"]["video"].shapes)


def test_a_shape_of_a_rank_the_family_does_not_take_is_refused_naming_its_layout():
    with pytest.raises(MatrixError, match=re.escape("dropblock3d takes NxCxDxHxW shapes (5-D), not 2x4x8x8")):
        matrix.check_shape((2, 4, 8, 8), "dropblock3d")
    matrix.check_shape((64, 197, 768), "drop-path")


def test_expand_is_the_full_product_with_implementations_adjacent():
    spec = MatrixSpec(("a", "b"), ((1, 2, 8, 8), (1, 2, 4, 4)), (3, 5), (0.1,), ("float32", "float16"), ("cpu",), ("forward", "backward"))
    cases = matrix.expand(spec)
    assert len(cases) == 2 * 2 * 2 * 2 * 2
    assert len({c.key for c in cases}) == len(cases)
    assert [c.implementation for c in cases[:2]] == ["a", "b"] and cases[0].group == cases[1].group
    # the dtypes of one setting follow each other: one turn group, two competing groups
    assert [c.dtype for c in cases[:4]] == ["float32", "float32", "float16", "float16"]
    assert len({c.turn_group for c in cases[:4]}) == 1 and len({c.group for c in cases[:4]}) == 2
    runs = [group for group, _ in itertools.groupby(c.turn_group for c in cases)]
    assert len(runs) == len(set(runs))  # each turn group is one contiguous run


@settings(max_examples=60, deadline=None)
@given(n_impls=st.integers(1, 4), n_shapes=st.integers(1, 4), n_blocks=st.integers(1, 3), count=st.integers(1, 7))
def test_shards_partition_the_matrix_and_keep_groups_whole(n_impls, n_shapes, n_blocks, count):
    spec = MatrixSpec(
        tuple(f"impl{i}" for i in range(n_impls)),
        tuple((1, 1, 8 + i, 8) for i in range(n_shapes)),
        tuple(range(1, n_blocks + 1)),
        dtypes=("float32", "bfloat16"),
        modes=("forward", "backward"),
    )
    cases = matrix.expand(spec)
    shards = [matrix.shard(cases, index, count) for index in range(1, count + 1)]
    flat = [case for part in shards for case in part]
    assert sorted(c.key for c in flat) == sorted(c.key for c in cases)
    assert len(flat) == len(cases)
    for part in shards:
        groups = {c.turn_group for c in part}
        assert all(sum(c.turn_group == g for c in part) == 2 * n_impls for g in groups)
    assert matrix.shard(cases, 1, count) == matrix.shard(cases, 1, count)  # deterministic


def test_exclusions_normalise_what_the_user_writes_and_match_every_condition():
    case = RunCase("timm-per-channel", "cpu", "float16", (32, 256, 56, 56), 7, 0.1, "backward", inplace=False)
    assert matrix.parse_exclusion("impl=torchvision,timm* dtype=half").matches(case)
    assert matrix.parse_exclusion("mode=both p=0.10 block=7 shape=32X256X56X56 inplace=no").matches(case)
    assert not matrix.parse_exclusion("impl=timm dtype=half").matches(case)  # a glob, not a prefix
    assert not matrix.parse_exclusion("impl=timm* dtype=float32").matches(case)  # every condition must hold


@pytest.mark.parametrize("text", ["", "colour=red", "impl", "impl=", "inplace=maybe"])
def test_bad_exclusions_say_how_to_write_one(text):
    with pytest.raises(MatrixError):
        matrix.parse_exclusion(text)


@pytest.mark.parametrize(
    ("text", "modes"),
    [("forward", ("forward",)), ("fwd", ("forward",)), ("FWD", ("forward",)), ("backward", ("backward",)),
     ("fwd+bwd", ("backward",)), ("forward+backward", ("backward",)), ("bwd", ("backward",)), ("both", ("forward", "backward"))],
)  # fmt: skip
def test_modes_are_accepted_in_every_spelling_the_tables_print(text, modes):
    assert matrix.parse_mode(text) == modes
