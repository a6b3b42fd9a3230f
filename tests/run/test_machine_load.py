"""Machine load readings, on fake /proc and /sys text; whatever cannot be read is None."""

from __future__ import annotations

import fnmatch

import pytest

from dropblock_bench.run.machine_load import (
    MAX_OTHER_CPU_SHARE,
    CpuTicks,
    MachineLoad,
    at_end,
    at_start,
    busy_reasons,
    cpu_governor,
    cpu_mhz,
    cpu_ticks,
    load_average,
    other_cpu_share,
)

CPUFREQ = "/sys/devices/system/cpu/cpu{}/cpufreq/{}"
PROC_STAT = """cpu  1000 50 300 8000 100 10 20 30 0 0
cpu0 500 25 150 4000 50 5 10 15 0 0
cpu1 500 25 150 4000 50 5 10 15 0 0
intr 12345
"""
# fields 14 and 15 (utime, stime) are 70 and 30; the command name holds spaces and a parenthesis
SELF_STAT = "4242 (py (thon) x) R 1 4242 4242 0 -1 4194304 900 0 0 0 70 30 0 0 20 0 3 0 100 1000 200\n"


def _fake(files: dict[str, str]):
    """A reader and a glob over ``files`` (path -> text): every other path is unreadable."""
    return files.get, lambda pattern: sorted(fnmatch.filter(files, pattern))


def _no_fallback() -> None:
    return None


def test_load_average_reads_proc_loadavg_else_the_fallback():
    read, _ = _fake({"/proc/loadavg": "0.52 0.58 0.61 1/467 12345\n"})
    assert load_average(read, _no_fallback) == [0.52, 0.58, 0.61]
    assert load_average(_fake({})[0], lambda: [1.0, 2.0, 3.0]) == [1.0, 2.0, 3.0]
    assert load_average(_fake({"/proc/loadavg": "garbage"})[0], _no_fallback) is None
    assert load_average(_fake({})[0], _no_fallback) is None


def test_governor_is_each_distinct_value_and_none_without_cpufreq():
    same = {CPUFREQ.format(0, "scaling_governor"): "performance\n", CPUFREQ.format(1, "scaling_governor"): "performance\n"}
    assert cpu_governor(*_fake(same)) == "performance"
    mixed = {**same, CPUFREQ.format(1, "scaling_governor"): "powersave\n"}
    assert cpu_governor(*_fake(mixed)) == "performance,powersave"
    assert cpu_governor(*_fake({"/proc/cpuinfo": "cpu MHz : 2000\n"})) is None


def test_frequency_from_cpufreq_in_khz_else_cpuinfo_else_none():
    sysfs = {CPUFREQ.format(0, "scaling_cur_freq"): "2400000\n", CPUFREQ.format(1, "scaling_cur_freq"): "2600000\n"}
    cpuinfo = {"/proc/cpuinfo": "processor\t: 0\ncpu MHz\t\t: 2000.500\n\nprocessor\t: 1\ncpu MHz\t\t: 2999.500\n"}
    assert cpu_mhz(*_fake({**sysfs, **cpuinfo})) == 2500.0  # cpufreq first
    assert cpu_mhz(*_fake(cpuinfo)) == 2500.0
    assert cpu_mhz(*_fake({"/proc/cpuinfo": "processor\t: 0\n"})) is None
    assert cpu_mhz(*_fake({})) is None


def test_cpu_ticks_count_busy_states_and_this_process():
    read, _ = _fake({"/proc/stat": PROC_STAT, "/proc/self/stat": SELF_STAT})
    # busy: everything but idle (8000) and iowait (100); total: the first 8 states
    assert cpu_ticks(read) == CpuTicks(busy=1410, total=9510, own=100)


@pytest.mark.parametrize(
    "files",
    [{}, {"/proc/stat": PROC_STAT}, {"/proc/self/stat": SELF_STAT}, {"/proc/stat": "intr 1\n", "/proc/self/stat": SELF_STAT},
     {"/proc/stat": PROC_STAT, "/proc/self/stat": "4242 (py) R 1"}],
)  # fmt: skip
def test_cpu_ticks_are_none_when_unreadable_or_malformed(files):
    assert cpu_ticks(_fake(files)[0]) is None


def test_other_processes_share_is_busy_time_not_ours_over_all_time():
    start = CpuTicks(busy=1000, total=10_000, own=100)
    end = CpuTicks(busy=1000 + 600, total=10_000 + 1000, own=100 + 200)  # 1000 ticks, 600 busy, 200 ours
    assert other_cpu_share(start, end) == pytest.approx(0.4)
    assert other_cpu_share(start, CpuTicks(busy=1100, total=11_000, own=400)) == 0.0  # clamped, never negative
    assert other_cpu_share(None, end) is None and other_cpu_share(start, None) is None
    assert other_cpu_share(start, start) is None  # no tick passed


def test_at_start_and_at_end_on_a_machine_without_proc_or_sys_are_all_none():
    read, glob = _fake({})
    start = at_start(read, glob, _no_fallback)
    assert (start.load_avg_start, start.cpu_governor, start.cpu_mhz) == (None, None, None)
    end = at_end(start, cpu_ticks(read), read, _no_fallback)
    assert (end.load_avg_end, end.other_cpu_share) == (None, None)
    assert busy_reasons(end) == []


def test_at_end_completes_the_start_with_what_happened_during_the_run():
    files = {"/proc/loadavg": "0.50 0.40 0.30 1/100 1\n", "/proc/stat": PROC_STAT, "/proc/self/stat": SELF_STAT}
    start = at_start(*_fake(files))
    assert start.load_avg_start == [0.5, 0.4, 0.3] and start.other_cpu_share is None
    ticks = CpuTicks(busy=1410 - 500, total=9510 - 1000, own=100 - 100)  # since: 1000 ticks, 500 busy, 100 ours
    files["/proc/loadavg"] = "1.50 0.60 0.35 2/100 1\n"
    end = at_end(start, ticks, _fake(files)[0])
    assert end.load_avg_start == [0.5, 0.4, 0.3] and end.load_avg_end == [1.5, 0.6, 0.35]
    assert end.other_cpu_share == pytest.approx(0.4)
    assert set(end.as_dict()) == {"cpus", "load_avg_start", "cpu_governor", "cpu_mhz", "load_avg_end", "other_cpu_share"}


def test_the_real_machine_reads_without_error():
    start = at_start()
    end = at_end(start, cpu_ticks())
    assert start.cpu_mhz is None or start.cpu_mhz > 0
    assert end.other_cpu_share is None or 0.0 <= end.other_cpu_share <= 1.0


@pytest.mark.parametrize(
    ("share", "load", "busy"),
    [
        (MAX_OTHER_CPU_SHARE + 0.15, [0.1, 0.1, 0.1], True),  # others took the CPUs: busy whatever the load
        (MAX_OTHER_CPU_SHARE - 0.05, [9.0, 9.0, 9.0], False),  # measured quiet during the run: an old load average does not count
        (None, [3.5, 1.0, 1.0], True),  # not measurable: more runnable tasks than CPUs at the start
        (None, [1.5, 1.0, 1.0], False),
        (None, None, False),
    ],
)
def test_busy_is_other_processes_share_else_the_load_average(share, load, busy):
    load_state = MachineLoad(cpus=2, load_avg_start=load, cpu_governor=None, cpu_mhz=None, other_cpu_share=share)
    reasons = busy_reasons(load_state)
    assert bool(reasons) is busy
    if busy and share is not None:
        assert reasons == [f"other processes took {share:.0%} of the CPUs during the run (over {MAX_OTHER_CPU_SHARE:.0%})"]
