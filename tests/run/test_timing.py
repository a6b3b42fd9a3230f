"""The timing engine: results, skips and errors. No assertion on how fast anything is."""

from __future__ import annotations

import statistics
import types

import pytest
import torch

from dropblock_bench.registry import Implementation, get_implementation
from dropblock_bench.run import timing
from dropblock_bench.run.matrix import MatrixSpec, RunCase, expand
from dropblock_bench.run.timing import RunSettings, run_case, run_matrix
from dropblock_bench.stats import median_confidence_interval

FAST = RunSettings(min_time_s=0.02, rounds=2, measure_memory=True)


def _case(**changes) -> RunCase:
    fields = {"implementation": "fused", "device": "cpu", "dtype": "float32", "shape": (2, 4, 12, 12), "block_size": 3, "p": 0.1, "mode": "forward"}
    return RunCase(**{**fields, **changes})


@pytest.mark.parametrize("mode", ["forward", "backward"])
def test_an_ok_case_has_every_field(mode):
    record = run_case(_case(mode=mode), get_implementation("fused"), FAST)
    assert record.status == "ok", record.reason
    result = record.timing
    assert result is not None
    assert result.n_samples == len(result.samples_ms) >= 2 and result.floor_samples_ms
    assert result.ci_low_ms <= result.median_ms <= result.ci_high_ms
    assert result.median_ms == statistics.median(result.samples_ms)
    assert result.floor_median_ms == statistics.median(result.floor_samples_ms)
    assert (result.ci_low_ms, result.ci_high_ms) == median_confidence_interval(result.samples_ms)
    assert result.iqr_ms >= 0
    assert result.floor_ratio == pytest.approx(result.median_ms / result.floor_median_ms)
    # every round gave samples of both, and the counts split them exactly (FAST has 2 rounds)
    assert len(result.samples_per_round) == len(result.floor_samples_per_round) == FAST.rounds
    assert sum(result.samples_per_round) == len(result.samples_ms) and min(result.samples_per_round) >= 1
    assert sum(result.floor_samples_per_round) == len(result.floor_samples_ms) and min(result.floor_samples_per_round) >= 1
    assert record.to_dict()["samples_per_round"] == result.samples_per_round
    # x (2x4x12x12 float32) read and the output written; backward also reads g and writes x.grad
    bytes_moved = 2 * 4 * 12 * 12 * 4 * (4 if mode == "backward" else 2)
    assert result.gbps == pytest.approx(bytes_moved / (result.median_ms * 1e-3) / 1e9)
    saved = record.memory.saved_bytes if record.memory else None
    if mode == "backward":
        assert saved is not None and 0 < saved <= 2 * 4 * 12 * 12  # at most one byte per element
    else:
        assert saved is None


def test_in_place_case_runs_against_the_in_place_floor(monkeypatch):
    statements: list[str] = []
    real_timer = timing.torch_benchmark.Timer

    def recording_timer(stmt, *args, **kwargs):
        statements.append(stmt)
        return real_timer(stmt, *args, **kwargs)

    monkeypatch.setattr(timing.torch_benchmark, "Timer", recording_timer)
    result = run_case(_case(inplace=True), get_implementation("fused"), FAST)
    assert result.status == "ok" and result.case.inplace
    assert statements[:2] == ["fn(x, p, k, inplace=True)", "x.mul_(c)"]  # the floor writes in place too
    assert set(statements) == set(statements[:2])  # the same timers, rebuilt over each round's fresh inputs


@pytest.mark.parametrize(
    ("changes", "record", "reason"),
    [
        ({"device": "cuda"}, {}, "cuda"),
        ({"dtype": "float16"}, {"dtypes": ("float32",)}, "does not support float16"),
        ({"mode": "backward"}, {"supports_backward": False}, "does not support backward"),
        ({"inplace": True}, {"supports_inplace": False}, "does not support inplace"),
        ({"inplace": True, "mode": "backward"}, {}, "in-place on a leaf"),
        ({"shape": (1, 1, 5, 5), "block_size": 7}, {}, "larger than the 5x5 map"),
    ],
)
def test_skips_say_why(changes, record, reason):
    if changes.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is present here")
    impl = Implementation(name="fused", target=get_implementation("fused").target, **record)
    result = run_case(_case(**changes), impl, FAST)
    assert result.status == "skipped" and reason in result.reason and result.timing is None


def test_an_implementation_that_raises_is_an_error_row_and_the_run_goes_on():
    def broken(x, p, block_size, **kwargs):
        raise RuntimeError("kaboom\nsecond line")

    impls = {"broken": Implementation(name="broken", target=broken), "fused": get_implementation("fused")}
    cases = [_case(implementation="broken"), _case()]
    seen = []
    results = run_matrix(cases, impls, FAST, on_result=seen.append)
    assert [r.status for r in results] == ["error", "ok"] and seen == results
    assert results[0].reason == "RuntimeError: kaboom"


def test_out_of_memory_is_recorded_as_such():
    def hungry(x, p, block_size, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20 GiB")

    result = run_case(_case(implementation="hungry"), Implementation(name="hungry", target=hungry), FAST)
    assert result.status == "error" and result.reason.startswith("out of memory")


def _recording(name: str, seen: list[tuple[str, int]]):
    def fn(x, p, block_size, **kwargs):
        seen.append((name, x.data_ptr()))
        return x * 1.5

    return Implementation(name=name, target=fn)


def test_implementations_of_one_setting_take_turns_on_one_input():
    seen: list[tuple[str, int]] = []
    impls = {name: _recording(name, seen) for name in ("a", "b")}
    started: list[str] = []
    results = run_matrix([_case(implementation="a"), _case(implementation="b")], impls,
                         RunSettings(min_time_s=0.02, rounds=3, measure_memory=False),
                         on_start=lambda case: started.append(case.implementation))
    assert [r.status for r in results] == ["ok", "ok"]
    assert started == ["a", "b", "b", "a", "a", "b"]  # one block each per round, in turn, the order rotating
    pointers: dict[int, set[str]] = {}
    for name, pointer in seen:
        pointers.setdefault(pointer, set()).add(name)
    assert all(names == {"a", "b"} for names in pointers.values())  # each round's x is shared by both


def test_each_setting_is_timed_on_its_own():
    started: list[tuple[str, int]] = []
    impls = {name: _recording(name, []) for name in ("a", "b")}
    cases = [_case(implementation=name, block_size=k) for k in (3, 5) for name in ("a", "b")]
    results = run_matrix(cases, impls, RunSettings(min_time_s=0.02, rounds=2, measure_memory=False),
                         on_start=lambda case: started.append((case.implementation, case.block_size)))
    assert [r.case for r in results] == cases
    assert started == [("a", 3), ("b", 3), ("b", 3), ("a", 3), ("a", 5), ("b", 5), ("b", 5), ("a", 5)]


def test_dtypes_of_one_setting_take_turns_each_on_its_own_input():
    seen: list[tuple[str, int]] = []
    impls = {name: _recording(name, seen) for name in ("a", "b")}
    spec = MatrixSpec(("a", "b"), ((2, 4, 12, 12),), (3,), dtypes=("float32", "float16"))
    started: list[tuple[str, str]] = []
    results = run_matrix(expand(spec), impls, RunSettings(min_time_s=0.02, rounds=2, measure_memory=False),
                         on_start=lambda case: started.append((case.implementation, case.dtype)))
    assert [r.status for r in results] == ["ok"] * 4
    # an implementation's dtypes back to back, so its dtypes' floor ratios compare within seconds;
    # round 2 rotates both the implementations and each one's dtypes
    assert started == [("a", "float32"), ("a", "float16"), ("b", "float32"), ("b", "float16"),
                       ("b", "float16"), ("b", "float32"), ("a", "float16"), ("a", "float32")]
    assert [(r.case.implementation, r.case.dtype) for r in results] == [(c.implementation, c.dtype) for c in expand(spec)]
    pointers = {}
    for name, pointer in seen:
        pointers.setdefault(pointer, set()).add(name)
    assert len(pointers) >= 2 and all(names == {"a", "b"} for names in pointers.values())  # one x a dtype a round


def test_an_implementation_failing_mid_run_leaves_the_others_timed():
    calls = {"n": 0}

    def flaky(x, p, block_size, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("gave up")
        return x * 1.5

    impls = {"flaky": Implementation(name="flaky", target=flaky), "fused": get_implementation("fused")}
    results = run_matrix([_case(implementation="flaky"), _case()], impls, FAST)
    assert [r.status for r in results] == ["error", "ok"]
    assert results[0].reason == "RuntimeError: gave up" and results[1].timing.n_samples >= 2
    assert results[0].timing is None  # a failed case carries no half-made measurement


def test_rounds_rotate_the_order_of_cases_and_which_of_case_and_floor_goes_first(monkeypatch):
    """Three dtypes over three rounds: each takes each place once, and the floor leads in odd rounds."""
    blocks: list[tuple[str, str]] = []

    class RecordingTimer:
        def __init__(self, statement, globals, num_threads):
            self.statement, self.dtype = statement, str(globals["x"].dtype).removeprefix("torch.")

        def blocked_autorange(self, min_run_time):
            blocks.append(("case" if self.statement.startswith("fn(") else "floor", self.dtype))
            return types.SimpleNamespace(times=[1e-3])

    monkeypatch.setattr(timing.torch_benchmark, "Timer", RecordingTimer)
    spec = MatrixSpec(("fused",), ((2, 4, 12, 12),), (3,), dtypes=("float32", "float16", "bfloat16"))
    results = run_matrix(expand(spec), {"fused": get_implementation("fused")}, RunSettings(min_time_s=0.03, rounds=3, measure_memory=False))
    assert [r.status for r in results] == ["ok"] * 3
    assert all(r.timing.samples_per_round == r.timing.floor_samples_per_round == [1, 1, 1] for r in results)
    order = ["float32", "float16", "bfloat16"]
    expected = []
    for round_index in range(3):
        for dtype in order[round_index:] + order[:round_index]:
            pair = [("case", dtype), ("floor", dtype)]
            expected += pair[::-1] if round_index % 2 else pair
    assert blocks == expected


def test_a_group_times_round_by_round_and_only_what_is_asked():
    from dropblock_bench.registry import resolve_implementations
    from dropblock_bench.run.timing import GroupTiming

    implementations = {i.name: i for i in resolve_implementations(["fused", "paper"])}
    cases = [RunCase(name, "cpu", "float32", (2, 4, 12, 12), 3, 0.1, "forward") for name in ("fused", "paper")]
    timing = GroupTiming(cases, implementations, input_seed=0)
    timing.time_round(0, 0.001)
    both = timing.last_round()
    assert all(data is not None and data[0] and data[1] for data in both)
    timing.time_round(1, 0.001, only={cases[0]}, with_floor=False)
    fused, paper = timing.last_round()
    assert fused is not None and fused[0] and fused[1] == []  # timed without its floor this round
    assert paper == both[1]  # not asked for: its last round is still the first


def test_reseating_keeps_the_values_and_the_timers_working():
    from dropblock_bench.registry import resolve_implementations
    from dropblock_bench.run.timing import GroupTiming

    case = RunCase("fused", "cpu", "float32", (2, 4, 12, 12), 3, 0.1, "forward")
    timing = GroupTiming([case], {i.name: i for i in resolve_implementations(["fused"])}, input_seed=3)
    before = timing._groups[0][0].scope["x"].clone()
    timing.reseat(12345)
    after = timing._groups[0][0].scope["x"]
    assert torch.equal(before, after)  # seeded: the same input, in a fresh allocation
    timing.time_round(0, 0.001)
    [data] = timing.last_round()
    assert data is not None and data[0] and data[1]


FAMILY_CASES = [
    ("dropblock3d", (2, 3, 5, 6, 6), {"block_size": 3}, "fn(x, p, k)"),
    ("drop-path", (4, 9, 8), {"block_size": 0}, "fn(x, p)"),
    ("spatial-dropout", (2, 4, 6, 6), {"block_size": 0}, "fn(x, p)"),
    ("cutout", (4, 3, 12, 12), {"block_size": 6, "p": 0.0, "holes": 2}, "fn(x, n, k)"),
]


@pytest.mark.parametrize(("family", "shape", "fields", "call"), FAMILY_CASES, ids=[c[0] for c in FAMILY_CASES])
@pytest.mark.parametrize("mode", ["forward", "backward"])
def test_each_family_is_timed_with_its_own_call(monkeypatch, family, shape, fields, call, mode):
    statements: list[str] = []
    real_timer = timing.torch_benchmark.Timer
    monkeypatch.setattr(timing.torch_benchmark, "Timer", lambda stmt, *a, **k: statements.append(stmt) or real_timer(stmt, *a, **k))
    calls: list[tuple] = []
    real = get_implementation(family)
    load = real.load

    def recorded(x, *arguments, **keywords):
        calls.append(arguments)
        return load()(x, *arguments, **keywords)

    impl = types.SimpleNamespace(**{f: getattr(real, f) for f in ("name", "devices", "dtypes", "supports_backward", "supports_inplace")},
                                 load=lambda: recorded)  # fmt: skip
    case = _case(implementation=family, shape=shape, family=family, mode=mode, **fields)
    record = run_case(case, impl, FAST)
    assert record.status == "ok", record.reason
    assert any(statement.startswith(call) or f"; {call}.backward(g)" in statement for statement in statements), statements
    expected = tuple(case.arguments.values())
    assert calls and all(arguments == expected for arguments in calls)
    assert (record.memory.saved_bytes is not None) == (mode == "backward")


def test_a_block_larger_than_a_3d_map_is_skipped_and_cutout_holes_never_are():
    db3d = _case(implementation="dropblock3d", shape=(1, 2, 4, 8, 8), block_size=5, family="dropblock3d")
    assert timing.skip_reason(db3d, get_implementation("dropblock3d")) == "block 5 is larger than the 4x8x8 map"
    cutout = _case(implementation="cutout", shape=(1, 3, 8, 8), block_size=32, p=0.0, family="cutout", holes=1)
    assert timing.skip_reason(cutout, get_implementation("cutout")) is None
