"""How loaded the machine was around a run: read from ``/proc`` and ``/sys``, never assumed.

A run records (:class:`MachineLoad`) the load average and the CPU frequency governor and
frequency at its start, and at its end the load average again and the share of the machine's
CPU time that other processes took while it ran. Everything that cannot be read here (no
``/proc`` outside Linux, no ``cpufreq`` in most VMs and containers) is None, never a guess.

The readers are arguments (``read``: path -> text or None; ``glob``: pattern -> paths), so
every function runs on fake ``/proc`` text in tests. :func:`busy_reasons` says, in words,
whether the machine was too busy for its times to be taken at face value.
"""

from __future__ import annotations

import dataclasses
import glob as globbing
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_OTHER_CPU_SHARE",
    "CpuTicks",
    "MachineLoad",
    "at_end",
    "at_start",
    "busy_reasons",
    "cpu_governor",
    "cpu_mhz",
    "cpu_ticks",
    "load_average",
    "other_cpu_share",
    "read_text",
]

ReadText = Callable[[str], str | None]
Glob = Callable[[str], list[str]]
LoadFallback = Callable[[], list[float] | None]

MAX_OTHER_CPU_SHARE = 0.10
"""Other processes' share of all CPUs' time during a run above which the machine counts as
busy. torch runs one thread per core by default, so any steady load elsewhere takes cores
from its threads. An idle machine shows about 1 % (daemons, the terminal); a tenth of the
machine (a fifth of a core on 2 cores) means the run shared its cores for much of its time:
on 2 cores, 18 % was enough to put every case of the quick matrix above the 10 % spread of
:data:`~dropblock_bench.run.noise.MAX_IQR_FRACTION`."""

_CPUFREQ = "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/"


def read_text(path: str) -> str | None:
    """The text of ``path``, or None when it cannot be read (absent, no permission, not text)."""
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _os_load_average() -> list[float] | None:
    try:
        return [float(value) for value in os.getloadavg()]
    except (AttributeError, OSError):  # no getloadavg (Windows), or unobtainable
        return None


def load_average(read: ReadText = read_text, fallback: LoadFallback = _os_load_average) -> list[float] | None:
    """The 1-, 5- and 15-minute load averages (runnable tasks), from ``/proc/loadavg``, else
    ``fallback`` (:func:`os.getloadavg` where the system has it); None when neither gives them."""
    text = read("/proc/loadavg")
    if text:
        try:
            return [float(value) for value in text.split()[:3]]
        except ValueError:
            pass
    return fallback()


def cpu_governor(read: ReadText = read_text, glob: Glob = globbing.glob) -> str | None:
    """The CPUs' frequency governor (``scaling_governor``); several distinct ones joined by
    ``,`` in sorted order; None where no CPU exposes one."""
    governors = {text.strip() for path in glob(_CPUFREQ + "scaling_governor") if (text := read(path)) and text.strip()}
    return ",".join(sorted(governors)) or None


def cpu_mhz(read: ReadText = read_text, glob: Glob = globbing.glob) -> float | None:
    """The CPUs' mean current frequency in MHz: ``scaling_cur_freq`` (kHz) where exposed, else
    the ``cpu MHz`` lines of ``/proc/cpuinfo``; None where neither can be read."""
    khz = [_number(read(path)) for path in glob(_CPUFREQ + "scaling_cur_freq")]
    mhz = [value / 1000 for value in khz if value is not None]
    if not mhz:
        cpuinfo = read("/proc/cpuinfo") or ""
        lines = (line.partition(":") for line in cpuinfo.splitlines() if line.startswith("cpu MHz"))
        mhz = [value for _, _, text in lines if (value := _number(text)) is not None]
    return round(statistics.fmean(mhz), 1) if mhz else None


def _number(text: str | None) -> float | None:
    try:
        return float(text.strip()) if text else None
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class CpuTicks:
    """CPU time since boot, in clock ticks (jiffies): all CPUs busy and in total, and this
    process (every thread) in user and system mode."""

    busy: int
    total: int
    own: int


def cpu_ticks(read: ReadText = read_text) -> CpuTicks | None:
    """The counters of :class:`CpuTicks` from ``/proc/stat`` (its ``cpu`` line; busy is every
    state but idle and iowait, steal included) and ``/proc/self/stat`` (utime + stime); None
    where either is absent or malformed."""
    stat, own = read("/proc/stat"), read("/proc/self/stat")
    if not stat or not own:
        return None
    try:
        line = next(line for line in stat.splitlines() if line.startswith("cpu "))
        # user nice system idle iowait irq softirq steal (guest time is already in user)
        ticks = [int(value) for value in line.split()[1:9]]
        fields = own.rpartition(")")[2].split()  # after the command name, which may hold spaces
        utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    except (StopIteration, ValueError, IndexError):
        return None
    if len(ticks) < 4:
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return CpuTicks(busy=sum(ticks) - idle, total=sum(ticks), own=utime + stime)


def other_cpu_share(start: CpuTicks | None, end: CpuTicks | None) -> float | None:
    """The fraction (0 to 1) of all CPUs' time between ``start`` and ``end`` that was busy
    outside this process: (busy ticks - this process's ticks) / all ticks, all ticks being
    CPUs x elapsed time. None when either reading is missing or no tick passed."""
    if start is None or end is None or end.total <= start.total:
        return None
    others = (end.busy - start.busy) - (end.own - start.own)
    return round(min(1.0, max(0.0, others / (end.total - start.total))), 4)


@dataclasses.dataclass(frozen=True)
class MachineLoad:
    """The machine around one run. ``load_avg_*``: 1-, 5- and 15-minute load averages;
    ``cpu_mhz``: mean current frequency at the start; ``other_cpu_share``: fraction of all
    CPUs' time other processes took during the run. None: could not be read here."""

    cpus: int | None
    load_avg_start: list[float] | None
    cpu_governor: str | None
    cpu_mhz: float | None
    load_avg_end: list[float] | None = None
    other_cpu_share: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The metadata form (``meta["machine_load"]`` of a ``--json`` file)."""
        return dataclasses.asdict(self)


def at_start(read: ReadText = read_text, glob: Glob = globbing.glob, fallback: LoadFallback = _os_load_average) -> MachineLoad:
    """The machine as a run starts: CPU count, load average (:func:`load_average`), governor,
    frequency."""
    return MachineLoad(
        cpus=os.cpu_count(),
        load_avg_start=load_average(read, fallback),
        cpu_governor=cpu_governor(read, glob),
        cpu_mhz=cpu_mhz(read, glob),
    )


def at_end(
    start: MachineLoad, ticks_at_start: CpuTicks | None, read: ReadText = read_text, fallback: LoadFallback = _os_load_average
) -> MachineLoad:
    """``start`` completed as the run ends: the load average now, and other processes' CPU
    share since ``ticks_at_start`` (:func:`cpu_ticks` taken as the timing began)."""
    share = other_cpu_share(ticks_at_start, cpu_ticks(read))
    return dataclasses.replace(start, load_avg_end=load_average(read, fallback), other_cpu_share=share)


def busy_reasons(load: MachineLoad) -> list[str]:
    """Why the machine was too busy for its times to be taken at face value, in words; empty
    when it was not. Busy: other processes took more than :data:`MAX_OTHER_CPU_SHARE` of the
    CPUs during the run; where that could not be measured, a 1-minute load average at the start
    above the CPU count (more runnable tasks than CPUs)."""
    share = load.other_cpu_share
    if share is not None:
        if share > MAX_OTHER_CPU_SHARE:
            return [f"other processes took {share:.0%} of the CPUs during the run (over {MAX_OTHER_CPU_SHARE:.0%})"]
        return []
    if load.load_avg_start and load.cpus and load.load_avg_start[0] > load.cpus:
        return [f"1-minute load average {load.load_avg_start[0]:.2f} at the start, over the {load.cpus} CPUs"]
    return []
