"""Host interference: did anything else use the machine while a benchmark was timed?

On a shared or small machine another process taking a core distorts a
benchmark far beyond its share: OpenMP threads that wait at a barrier for a
descheduled sibling turn one busy neighbour into a 10-70x slower step. The
record must say when the machine was not the benchmark's own, the way
pyperf's system checks do.

Two snapshots bracket the timed region (outside it: nothing of ours runs
beside the timed loop). Each holds the system-wide CPU time (``/proc/stat``
through psutil) and this process's own CPU time, children included. What
the machine was busy with beyond our own time, as a share of the machine's
CPU time over the window, is ``other_cpu_share``; hypervisor steal is
``steal_share``. Both come from tick-based kernel accounting (USER_HZ, 10 ms
per CPU), so each carries its resolution, and a share is only called noisy
when it exceeds the threshold by more than that resolution.

Everything is a pure function of the snapshots; the readers are injectable.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

#: Other processes above this share of the machine's CPU time make a result noisy.
MAX_OTHER_CPU_SHARE = 0.10
#: Hypervisor steal above this share makes a result noisy.
MAX_STEAL_SHARE = 0.02


@dataclass(frozen=True)
class CpuTimes:
    """System-wide CPU seconds, summed over all CPUs."""

    busy_s: float
    steal_s: float
    total_s: float


@dataclass(frozen=True)
class Snapshot:
    wall_s: float
    system: CpuTimes | None
    own_cpu_s: float
    cpus: int
    cpu_mhz: float | None


def system_cpu_times() -> CpuTimes | None:
    """psutil's system-wide times; ``None`` where the platform gives none."""
    try:
        import psutil

        times = psutil.cpu_times()
    except Exception:  # noqa: BLE001 - an unreadable counter is recorded as unknown
        return None
    fields = times._asdict()
    # guest and guest_nice are already counted in user and nice (Linux /proc/stat).
    busy = sum(fields.get(name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))
    steal = fields.get("steal", 0.0)
    total = busy + steal + sum(fields.get(name, 0.0) for name in ("idle", "iowait"))
    return CpuTimes(busy, steal, total)


def own_cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its waited-for children."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def current_cpu_mhz() -> float | None:
    try:
        import psutil

        freq = psutil.cpu_freq()
    except Exception:  # noqa: BLE001
        return None
    return float(freq.current) if freq is not None and freq.current else None


def cpu_governor(root: Path = Path("/sys/devices/system/cpu/cpu0/cpufreq")) -> str | None:
    try:
        return (root / "scaling_governor").read_text().strip() or None
    except OSError:
        return None


def usable_cpus() -> int:
    return os.cpu_count() or 1


def take_snapshot(system: Callable[[], CpuTimes | None] = system_cpu_times,
                  own: Callable[[], float] = own_cpu_seconds,
                  clock: Callable[[], float] = time.monotonic,
                  mhz: Callable[[], float | None] = current_cpu_mhz,
                  cpus: Callable[[], int] = usable_cpus) -> Snapshot:
    return Snapshot(clock(), system(), own(), cpus(), mhz())


def tick_seconds() -> float:
    try:
        return 1.0 / os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):
        return 0.01


def assess(before: Snapshot, after: Snapshot, *, loadavg_1m: float | None = None, tick_s: float = 0.01,
           governor: str | None = None, device_throttle: list[str] | None = None) -> dict[str, Any]:
    """The ``interference`` record field: shares of the machine taken by others, and the verdict."""
    result: dict[str, Any] = {
        "window_s": after.wall_s - before.wall_s,
        "other_cpu_share": None,
        "steal_share": None,
        "loadavg_1m": loadavg_1m,
        "cpus": after.cpus,
        "cpu_mhz": {"before": before.cpu_mhz, "after": after.cpu_mhz},
        "cpu_governor": governor,
        "device_throttle": device_throttle,
        "noisy": False,
        "reasons": [],
        "source": "system-wide CPU time (psutil.cpu_times, /proc/stat) minus this process's own "
                  "(os.times, children included), over the timed region",
    }
    total = (after.system.total_s - before.system.total_s
             if before.system is not None and after.system is not None else None)
    if total is None:
        result["unavailable"] = "no system-wide CPU times on this platform"
    elif total <= 0:
        result["unavailable"] = "the window is shorter than the kernel's CPU-time resolution"
    else:
        own = after.own_cpu_s - before.own_cpu_s
        others = max(0.0, (after.system.busy_s - before.system.busy_s) - own)
        steal = max(0.0, after.system.steal_s - before.system.steal_s)
        # Each of the system's CPUs and our own counter may be off by up to a tick at both ends.
        resolution = 2 * tick_s * (after.cpus + 1) / total
        result.update(other_cpu_share=others / total, steal_share=steal / total, resolution_share=resolution)
        if others / total - resolution > MAX_OTHER_CPU_SHARE:
            result["reasons"].append(f"other processes used {others / total:.0%} of the machine's CPU time "
                                     f"(> {MAX_OTHER_CPU_SHARE:.0%})")
        if steal / total - resolution > MAX_STEAL_SHARE:
            result["reasons"].append(f"the hypervisor stole {steal / total:.1%} of the CPU time "
                                     f"(> {MAX_STEAL_SHARE:.0%})")
    if device_throttle:
        result["reasons"].append(f"the device throttled its clocks ({', '.join(device_throttle)})")
    result["noisy"] = bool(result["reasons"])
    return result


def loadavg_1m() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


class InterferenceWatch:
    """Snapshots around a timed region (``with`` block); ``result()`` gives the record field."""

    def __init__(self, snapshot: Callable[[], Snapshot] = take_snapshot) -> None:
        self.snapshot = snapshot
        self.before: Snapshot | None = None
        self.after: Snapshot | None = None

    def __enter__(self) -> "InterferenceWatch":
        self.before = self.snapshot()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.after = self.snapshot()

    def result(self, device_throttle: list[str] | None = None) -> dict[str, Any] | None:
        if self.before is None or self.after is None:
            return None
        return assess(self.before, self.after, loadavg_1m=loadavg_1m(), tick_s=tick_seconds(),
                      governor=cpu_governor(), device_throttle=device_throttle)
