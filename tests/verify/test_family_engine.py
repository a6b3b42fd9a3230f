"""The family verifier (DropBlock3d, DropPath, SpatialDropout, Cutout): planted defects are
caught for the right reason, correct implementations pass, within the false-alarm bound."""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing

import pytest
import torch
from broken_families import FAMILY_CORRECT, FAMILY_DEFECTS
from scipy import stats

from dropblock_bench import spec
from dropblock_bench.families import cutout as cutout_law
from dropblock_bench.families import dropblock3d as dropblock3d_law
from dropblock_bench.families.catalog import FAMILIES
from dropblock_bench.registry import list_implementations
from dropblock_bench.verify import Verdict
from dropblock_bench.verify.family_engine import count_family_steps, verify_family_implementation
from dropblock_bench.verify.family_laws import FamilyCase, case_law
from dropblock_bench.verify.family_settings import FamilySettings

OTHER_FAMILIES = [name for name in FAMILIES if name != "dropblock2d"]
BUILTINS = [impl for impl in list_implementations() if impl.family != "dropblock2d" and impl.origin == "dropblock-bench"]
DEFAULT = FamilySettings()


def test_every_family_has_six_planted_defects_or_more():
    per_family = collections.Counter(defect.implementation.family for defect in FAMILY_DEFECTS)
    assert all(per_family[name] >= 6 for name in OTHER_FAMILIES), per_family
    assert {impl.family for impl in BUILTINS} == set(OTHER_FAMILIES)


@pytest.mark.parametrize("defect", FAMILY_DEFECTS, ids=[d.implementation.name for d in FAMILY_DEFECTS])
def test_default_settings_catch_every_planted_defect_for_the_right_reason(defect):
    report = verify_family_implementation(defect.implementation, DEFAULT)
    failed = {check.check for check in report.failures}
    assert defect.breaks <= failed, f"missed {sorted(defect.breaks - failed)}; failed: {sorted(failed)}"
    assert not failed & defect.spares, f"misdiagnosed: {sorted(failed & defect.spares)} failed too"
    for failure in report.failures:
        assert failure.reason, f"{failure.check} failed without a reason"
    if defect.reason_mentions:
        reasons = [c.reason for c in report.failures if c.check in defect.breaks]
        assert all(defect.reason_mentions in reason for reason in reasons), reasons


@pytest.mark.parametrize("impl", BUILTINS + FAMILY_CORRECT, ids=[i.name for i in BUILTINS + FAMILY_CORRECT])
def test_correct_implementations_pass_their_own_contracts(impl):
    report = verify_family_implementation(impl, DEFAULT)
    assert report.passed and not report.warnings, [(c.check, c.case, c.reason) for c in report.failures + report.warnings]
    exercised = {c.check for c in report.checks if c.verdict is Verdict.PASS}
    assert {"rate", "position", "structure", "normalisation", "independence.calls", "api.shape", "api.mutation"} <= exercised
    assert "power" in report.notes[-1] and "false alarms <= 0.01" in report.notes[-1]


def _verify_by_name(name: str, seed: int) -> tuple[str, bool, list[tuple[str, str]]]:
    """One default-settings run in a worker process (one thread: two workers share two cores)."""
    torch.set_num_threads(1)
    impl = next(i for i in BUILTINS + FAMILY_CORRECT if i.name == name)
    report = verify_family_implementation(impl, FamilySettings(seed=seed))
    return name, report.passed, [(c.check, c.case) for c in report.failures]


@pytest.mark.slow
def test_false_alarms_are_within_the_family_wise_bound():
    """Across 20 seeds per built-in and per correct implementation of another style, failing
    runs are consistent with <= 1 % per run (two worker processes)."""
    jobs = [(impl.name, seed) for impl in BUILTINS + FAMILY_CORRECT for seed in range(1, 21)]
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = list(pool.map(_verify_by_name, *zip(*jobs)))
    failing = [run for run in runs if not run[1]]
    allowed = int(stats.binom.isf(1e-3, len(runs), DEFAULT.alpha))  # exceeded with probability < 0.001 at 1 %
    assert len(runs) == 20 * len(BUILTINS + FAMILY_CORRECT)
    assert len(failing) <= allowed, failing


def test_variance_shift_is_a_note_for_every_case():
    impl = next(i for i in BUILTINS if i.name == "drop-path")
    report = verify_family_implementation(impl, FamilySettings.for_mode(quick=True))
    shifts = [c for c in report.checks if c.check == "variance-shift"]
    assert len(shifts) == len(FamilySettings.for_mode(quick=True).cases("drop-path"))
    assert all(c.verdict is Verdict.NOTE for c in shifts)
    assert shifts[0].observed == pytest.approx(1 / 0.9, abs=1e-4)  # p = 0.1, inverted scaling


def test_departures_from_the_reference_are_notes():
    blog = next(i for i in BUILTINS if i.name == "drop-path-blog")
    report = verify_family_implementation(blog, FamilySettings.for_mode(quick=True))
    assert {c.check for c in report.checks if c.verdict is Verdict.NOTE} >= {"contract.unit", "contract.scale"}
    assert report.passed


def test_progress_reports_every_step():
    seen: list[str] = []
    impl = next(i for i in BUILTINS if i.name == "spatial-dropout")
    settings = FamilySettings.for_mode(quick=True)
    verify_family_implementation(impl, settings, progress=seen.append)
    assert len(seen) == count_family_steps(impl, settings)


def test_the_structure_reader_takes_unions_of_windows_and_nothing_else():
    """The math layer's box reader, as the family laws call it: 3 x 3 boxes centred on their seed."""
    valid, anywhere = (range(1, 5), range(1, 5)), (range(6), range(6))
    extents = ((1, 1), (1, 1))
    mask = torch.zeros(1, 1, 6, 6, dtype=torch.bool)
    mask[..., 1:4, 1:4] = True
    mask[..., 2:5, 3:6] = True
    assert bool(spec.explained_by_boxes(mask, valid, extents).all())
    mask[..., 0, 0] = True  # a lone unit is no 3 x 3 window
    assert not bool(spec.explained_by_boxes(mask, anywhere, extents).all())
    corner = torch.zeros(1, 1, 6, 6, dtype=torch.bool)
    corner[..., :2, :2] = True  # a 3 x 3 square clipped at the corner
    assert not bool(spec.explained_by_boxes(corner, valid, extents).all())
    assert bool(spec.explained_by_boxes(corner, anywhere, extents).all())


def test_cutout_holes_are_read_exactly_with_their_clipping():
    contract = FAMILIES["cutout"].reference_contract
    generator = torch.Generator().manual_seed(0)
    cut = cutout_law.reference_cutout_mask(contract, (64, 1, 9, 11), 2, 6, generator=generator)
    assert bool(cutout_law.explained_by_holes(contract, cut, 6).all())
    strip = torch.zeros(9, 11, dtype=torch.bool)
    strip[0, 2:8] = True  # one row at the top: a hole centred on row 0 still shows 3 rows
    assert not bool(cutout_law.explained_by_holes(contract, strip, 6))


def test_dropblock3d_blocks_are_read_exactly():
    generator = torch.Generator().manual_seed(0)
    for contract in (spec.PAPER_CONTRACT, spec.PAPER_CONTRACT.replace(seeds="anywhere")):
        dropped = dropblock3d_law.reference_drop_mask(contract, (4, 3, 5, 6, 7), 0.3, 3, generator=generator)
        assert bool(dropblock3d_law.explained_by_blocks(contract, dropped, 3).all())
    flat = torch.zeros(5, 6, 7, dtype=torch.bool)
    flat[2, 1:4, 1:4] = True  # a 3 x 3 x 1 square is no 3 x 3 x 3 block
    assert not bool(dropblock3d_law.explained_by_blocks(spec.PAPER_CONTRACT, flat, 3))


def test_case_laws_match_their_families_by_hand():
    law = case_law("drop-path", FAMILIES["drop-path"].reference_contract, FamilyCase((100, 3), (0.2,)))
    assert law.expected_rate == 0.2 and law.rate_variance == pytest.approx(0.2 * 0.8 / 100)
    law = case_law("spatial-dropout", FAMILIES["spatial-dropout"].reference_contract, FamilyCase((4, 5, 2, 2), (0.5,)))
    assert law.rate_variance == pytest.approx(0.25 / 20)
    law = case_law("cutout", FAMILIES["cutout"].reference_contract, FamilyCase((2, 3, 4, 4), (1, 8)))
    assert law.expected_rate == pytest.approx(1.0)  # a side-8 patch anywhere on 4 x 4 covers it all
