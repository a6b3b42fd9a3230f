"""Speed and memory targets of `fused` / `fused-shared` (issue: "a fused DropBlock that beats
them by an order of magnitude"), measured as ratios side by side in one process.

Run: ``pytest tests/bench/test_fused_targets.py --benchmark-only`` (CPU, fp32 unless named, block 7, p 0.1;
set ``torch.set_num_threads`` via ``DBENCH_THREADS``, default 2). Each test records the ratio
it reached in ``extra_info`` and asserts its target, whose bound comes from
``reports/targets.py`` (the one copy; the report's targets table uses it too). Peers are
compared when installed.
Memory is glibc's steady regime, as in ``dbench run``: outputs reuse memory already faulted in,
so ratios compare the kernels; ``test_huge_page_advice_pays_on_fresh_outputs`` measures, in a
child process with the system's allocator, what ``fused``'s huge-page advice saves there.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys

import pytest
import torch
from report_targets import targets  # the targets' one copy, shared with the report's table
from scipy import stats as scipy_stats
from torch.utils import benchmark as torch_benchmark

from dropblock_bench.registry import default_registry
from dropblock_bench.run.allocator import steady_glibc_malloc, thp_mode
from dropblock_bench.run.memory import cpu_peak_supported, peak_memory_bytes, saved_for_backward_bytes
from dropblock_bench.stats import ratio_excess

STAGES = targets.STAGES
torch.set_num_threads(int(os.environ.get("DBENCH_THREADS", "2")))
steady_glibc_malloc()  # as `dbench run` does by default: no call pays page faults, whatever ran before


def _fn(name: str):
    """The implementation's callable; a peer that is not installed skips, a built-in that does not load fails."""
    registry = default_registry()
    if name not in registry.names():  # peers register only when their package imports
        pytest.skip(f"{name} is not installed")
    implementation = registry.get(name)
    if implementation.origin == "dropblock-bench":
        return implementation.load()
    try:
        return implementation.load()
    except Exception:  # noqa: BLE001
        pytest.skip(f"{name} is not installed")


def _medians_ms(statements: dict[str, str], scope: dict, rounds: int = 3, block_s: float = 0.3) -> dict[str, float]:
    """Median time of each statement (ms per call), timed in alternating blocks so ratios hold on a noisy machine."""
    samples: dict[str, list[float]] = {name: [] for name in statements}
    for _ in range(rounds):
        for name, statement in statements.items():
            timer = torch_benchmark.Timer(statement, globals=scope, num_threads=torch.get_num_threads())
            samples[name] += [t * 1e3 for t in timer.blocked_autorange(min_run_time=block_s).times]
    return {name: statistics.median(values) for name, values in samples.items()}


def _round_medians_ms(statements: dict[str, str], scope: dict, rounds: int = 16, block_s: float = 0.1) -> list[dict[str, float]]:
    """Each round, the median time (ms per call) of every statement, timed back to back; the
    order rotates from round to round, so no statement always follows the same one."""
    names = list(statements)
    medians = []
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        timed = {}
        for name in order:
            timer = torch_benchmark.Timer(statements[name], globals=scope, num_threads=torch.get_num_threads())
            timed[name] = statistics.median(timer.blocked_autorange(min_run_time=block_s).times) * 1e3
        medians.append(timed)
    return medians


FLOOR_TARGETS = targets.FLOOR_TARGETS


@pytest.mark.parametrize(("name", "stage"), list(FLOOR_TARGETS), ids=[f"{n}-{s}" for n, s in FLOOR_TARGETS])
def test_forward_vs_memory_floor(benchmark, name, stage):
    scope = {"fn": _fn(name), "x": torch.randn(STAGES[stage])}
    medians = benchmark.pedantic(_medians_ms, args=({"impl": "fn(x, 0.1, 7)", "floor": "x * 1.0001"}, scope), rounds=1, iterations=1)
    ratio = medians["impl"] / medians["floor"]
    benchmark.extra_info.update(ratio_to_floor=ratio, target=FLOOR_TARGETS[(name, stage)], **medians)
    assert ratio <= FLOOR_TARGETS[(name, stage)]


@pytest.mark.parametrize("peer", targets.SPEEDUP_PEERS)
@pytest.mark.parametrize("stage", list(STAGES))
def test_fused_is_an_order_of_magnitude_faster_than_per_channel_peers(benchmark, peer, stage):
    scope = {"fused": _fn("fused"), "peer": _fn(peer), "x": torch.randn(STAGES[stage])}
    medians = benchmark.pedantic(_medians_ms, args=({"fused": "fused(x, 0.1, 7)", "peer": "peer(x, 0.1, 7)"}, scope, 2, 0.2), rounds=1, iterations=1)
    speedup = medians["peer"] / medians["fused"]
    benchmark.extra_info.update(speedup=speedup, **medians)
    assert speedup >= targets.SPEEDUP_TARGETS[stage]


@pytest.mark.parametrize("stage", list(STAGES))
def test_fused_shared_beats_timm_default(benchmark, stage):
    """Faster than timm, shown: over 16 rounds, each round's pair timed back to back (a slow
    stretch of a shared machine then slows both), a one-sided Wilcoxon signed-rank test of
    log(ours / timm) < 0 gives p < 0.01."""
    scope = {"ours": _fn("fused-shared"), "timm": _fn("timm"), "x": torch.randn(STAGES[stage])}
    statements = {"ours": "ours(x, 0.1, 7)", "timm": "timm(x, 0.1, 7)"}
    rounds = benchmark.pedantic(_round_medians_ms, args=(statements, scope, 16, 0.1), rounds=1, iterations=1)
    logs = [math.log(r["ours"] / r["timm"]) for r in rounds]
    p_value = float(scipy_stats.wilcoxon(logs, alternative="less").pvalue)
    ratio = math.exp(statistics.median(logs))
    benchmark.extra_info.update(ratio=ratio, p_value=p_value, **{name: statistics.median(r[name] for r in rounds) for name in statements})
    assert p_value < 0.01, f"median ratio {ratio:.3f} over {len(rounds)} rounds, p = {p_value:.3g}"


@pytest.mark.parametrize(("name", "target"), list(targets.IN_PLACE_TARGETS.items()))
@pytest.mark.parametrize("stage", list(STAGES))
def test_in_place_vs_in_place_floor(benchmark, name, target, stage):
    scope = {"fn": _fn(name), "x": torch.randn(STAGES[stage])}
    statements = {"impl": "fn(x, 0.1, 7, inplace=True)", "floor": "x.mul_(1.0)"}
    medians = benchmark.pedantic(_medians_ms, args=(statements, scope), rounds=1, iterations=1)
    ratio = medians["impl"] / medians["floor"]
    benchmark.extra_info.update(ratio_to_floor=ratio, target=target, **medians)
    assert ratio <= target


def test_forward_backward_and_memory_at_56(benchmark):
    fn = _fn("fused")
    x = torch.randn(STAGES["56"], requires_grad=True)
    scope = {"fn": fn, "x": x, "g": torch.randn(STAGES["56"])}
    statements = {"impl": "x.grad = None; fn(x, 0.1, 7).backward(g)", "floor": "x.grad = None; (x * 1.0001).backward(g)"}
    medians = benchmark.pedantic(_medians_ms, args=(statements, scope, 2), rounds=1, iterations=1)
    saved_per_element = saved_for_backward_bytes(lambda: fn(x, 0.1, 7), exclude=x) / x.numel()
    plain = x.detach()
    peak = peak_memory_bytes(lambda: fn(plain, 0.1, 7), torch.device("cpu")) if cpu_peak_supported() else None
    ratio = medians["impl"] / medians["floor"]
    benchmark.extra_info.update(ratio_to_floor=ratio, saved_bytes_per_element=saved_per_element, peak_over_input=peak and peak / plain.nbytes)
    assert ratio <= targets.FORWARD_BACKWARD_TARGET
    assert saved_per_element <= targets.SAVED_BYTES_PER_ELEMENT_TARGET
    if peak is not None:
        assert peak <= targets.PEAK_MEMORY_TARGET * plain.nbytes


@pytest.mark.parametrize("inplace", [False, True], ids=["out-of-place", "in-place"])
@pytest.mark.parametrize("dtype", [getattr(torch, name) for name in targets.HALF], ids=list(targets.HALF))
@pytest.mark.parametrize("stage", list(STAGES))
@pytest.mark.parametrize("name", targets.HALF_IMPLS)
def test_half_precision_is_no_slower_than_float32_relative_to_its_floor(benchmark, name, dtype, stage, inplace):
    """Fails when the half-precision ratio to its floor exceeds fp32's over 16 paired rounds:
    one-sided Wilcoxon signed-rank test on the per-round excess, p < targets.HALF_ALPHA (0.01;
    :func:`dropblock_bench.stats.ratio_excess`), as the report's table judges a run."""
    fn = _fn(name)
    call, floor = ("fn({}, 0.1, 7, inplace=True)", "{}.mul_(1.0)") if inplace else ("fn({}, 0.1, 7)", "{} * 1.0001")
    x32 = torch.randn(STAGES[stage])
    scope = {"fn": fn, "x32": x32, "xh": x32.to(dtype)}
    statements = {"half": call.format("xh"), "half_floor": floor.format("xh"), "fp32": call.format("x32"), "fp32_floor": floor.format("x32")}
    rounds = benchmark.pedantic(_round_medians_ms, args=(statements, scope), rounds=1, iterations=1)
    excess = ratio_excess([tuple(r[name] for name in statements) for r in rounds])
    medians = {name: statistics.median(r[name] for r in rounds) for name in statements}
    benchmark.extra_info.update(excess_ratio=excess.median, p_value=excess.p_value, **medians)
    assert excess.p_value >= targets.HALF_ALPHA, f"half precision is slower than fp32 relative to its floor (median excess {excess.median:+.3f})"


HUGE_PAGE_AB = """
import os, sys, torch
from torch.utils import benchmark
threads = int(sys.argv[1])
torch.set_num_threads(threads)
from dropblock_bench.switches import HUGE_PAGES_ENV
from dropblock_bench.implementations import fused, fused_cpu
if fused_cpu.load() is None or fused_cpu.load().advise_huge_pages(torch.empty(4 << 20)) == 0:
    print("skip"); raise SystemExit
x = torch.randn(32, 512, 28, 28)
samples = {"on": [], "off": []}
for _ in range(4):
    for setting in ("on", "off"):
        os.environ[HUGE_PAGES_ENV] = "1" if setting == "on" else "0"
        timer = benchmark.Timer("f(x, 0.1, 7)", globals={"f": fused.drop_block2d_shared, "x": x}, num_threads=threads)
        samples[setting] += [t * 1e3 for t in timer.blocked_autorange(min_run_time=0.3).times]
print(*(sorted(v)[len(v) // 2] for v in (samples["on"], samples["off"])))
"""


def test_huge_page_advice_pays_on_fresh_outputs(benchmark):
    """With the system's allocator (a fresh 51 MB output each call at 32x512x28x28, fp32), the
    advice must make `fused-shared` faster than without it, alternating in one process."""

    def run() -> str:
        done = subprocess.run([sys.executable, "-c", HUGE_PAGE_AB, str(torch.get_num_threads())], check=False, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip()

    if thp_mode() in (None, "never"):
        pytest.skip(f"transparent huge pages are {thp_mode() or 'not available'} here")
    out = benchmark.pedantic(run, rounds=1, iterations=1)
    if out == "skip":
        pytest.skip("no transparent huge pages to advise here")
    on, off = map(float, out.split())
    benchmark.extra_info.update(advised_ms=on, not_advised_ms=off, speedup=off / on)
    assert on < off
