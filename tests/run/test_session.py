"""A run's matrix, family by family: which families a run covers, and the arguments each takes."""

from __future__ import annotations

import pytest

from dropblock_bench.errors import DbenchError
from dropblock_bench.run.matrix import PRESETS
from dropblock_bench.run.session import RunRequest, matrix_specs, plan

EVERY = {"dropblock2d": ["fused"], "dropblock3d": ["dropblock3d"], "drop-path": ["drop-path"],
         "spatial-dropout": ["spatial-dropout"], "cutout": ["cutout"]}  # fmt: skip


def test_with_no_shape_every_family_runs_its_quick_preset_with_its_own_arguments():
    specs = {spec.family: spec for spec in matrix_specs(EVERY, chosen=False)}
    assert list(specs) == list(EVERY)
    for family, spec in specs.items():
        assert spec.shapes == PRESETS[family]["quick"].shapes and spec.modes == PRESETS[family]["quick"].modes
    assert specs["dropblock2d"].block_sizes == (7,) and specs["dropblock2d"].ps == (0.1,) and specs["dropblock2d"].holes == (0,)
    assert specs["dropblock3d"].block_sizes == (3,)
    assert specs["drop-path"].block_sizes == (0,) and specs["drop-path"].ps == (0.1,)
    assert specs["cutout"].block_sizes == (16,) and specs["cutout"].ps == (0.0,) and specs["cutout"].holes == (1,)


def test_a_preset_runs_in_the_families_that_have_it_and_options_override_it():
    specs = matrix_specs(EVERY, preset="resnet50", chosen=False, p=["0.2"], block_size=["5"])
    assert [spec.family for spec in specs] == ["dropblock2d", "spatial-dropout"]
    assert specs[0].block_sizes == (5,) and specs[0].ps == (0.2,) and specs[1].block_sizes == (0,)
    [imagenet] = matrix_specs({"cutout": ["cutout"]}, preset="imagenet", holes=["2", "3"])
    assert imagenet.block_sizes == (112,) and imagenet.holes == (2, 3) and imagenet.shapes == ((64, 3, 224, 224),)


def test_a_shape_picks_the_families_of_its_rank_unless_they_were_chosen():
    specs = matrix_specs(EVERY, shape=["8x197x768"], chosen=False)
    assert [spec.family for spec in specs] == ["drop-path", "spatial-dropout"]
    with pytest.raises(DbenchError, match="dropblock3d takes NxCxDxHxW shapes"):
        matrix_specs({"dropblock3d": ["dropblock3d"]}, shape=["8x197x768"])
    mixed = matrix_specs({"dropblock2d": ["fused"], "dropblock3d": ["dropblock3d"]}, shape=["2x3x8x8", "2x3x4x8x8"])
    assert [spec.shapes for spec in mixed] == [((2, 3, 8, 8),), ((2, 3, 4, 8, 8),)]
    with pytest.raises(DbenchError, match="no chosen family takes shapes of that rank"):
        matrix_specs(EVERY, shape=["1x2x3x4x5x6"], chosen=False)


def test_the_plan_holds_every_familys_cases_with_their_family():
    specs = matrix_specs(EVERY, chosen=False)
    cases = plan(RunRequest({}, specs, exclusions=["family=cutout,drop-path"]))
    assert {case.family for case in cases} == {"dropblock2d", "dropblock3d", "spatial-dropout"}
    assert all(case.implementation in EVERY[case.family] for case in cases)
    assert {case.setting_label for case in cases if case.family == "spatial-dropout"} == {"p=0.1"}
