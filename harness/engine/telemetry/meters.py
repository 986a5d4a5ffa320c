"""Energy meters: RAPL (powercap sysfs), NVML, Ascend npu-smi; and a power integrator.

Each meter has ``available() -> reason | None``, ``start()`` and
``stop() -> EnergyReading``. Counter meters (RAPL, NVML's total-energy
counter) read a cumulative counter at both ends and handle wrap-around;
power meters (NVML without the counter, npu-smi) are sampled on a background
thread by :class:`PowerIntegrator`, which integrates watts over time with the
trapezoid rule. Every dependency (sysfs root, NVML module, command runner,
clock) is injectable, so the parsing and integration logic is tested against
real file layouts and test doubles, without hardware.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

POWERCAP_ROOT = Path("/sys/class/powercap")


@dataclass
class EnergyReading:
    meter: str
    joules: float
    seconds: float
    method: str  # "counter" or "integrated power samples"
    domains: dict[str, float] = field(default_factory=dict)
    samples: int | None = None
    utilisation: float | None = None
    #: A sampling thread that ran beside the timed loop: its interval, sample count and
    #: measured cost (wall time inside its reads, and that as a share of the window).
    sampling: dict[str, Any] | None = None
    #: Clock-throttle reasons the device reported during the window (NVML: power, thermal).
    throttle_reasons: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Meter(Protocol):
    name: str

    def available(self) -> str | None:
        """``None`` when the meter can read; otherwise the reason it cannot."""

    def start(self) -> None: ...

    def stop(self) -> EnergyReading: ...


# -- RAPL ---------------------------------------------------------------------

@dataclass
class RaplZone:
    name: str
    energy_path: Path
    max_range_uj: int


def counter_delta(start: int, end: int, max_range: int) -> int:
    """Increase of a counter that wraps to zero after ``max_range``."""
    return end - start if end >= start else end + max_range - start


class RaplMeter:
    """CPU package and DRAM energy from Linux powercap (``intel-rapl*`` zones, also on AMD)."""

    name = "rapl"

    def __init__(self, root: Path = POWERCAP_ROOT, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = Path(root)
        self.clock = clock
        self._zones: list[RaplZone] | None = None
        self._start: dict[str, int] = {}
        self._t0 = 0.0

    def zones(self) -> list[RaplZone]:
        if self._zones is None:
            zones = []
            for folder in sorted(self.root.glob("intel-rapl:*")):
                try:
                    label = (folder / "name").read_text().strip()
                    max_range = int((folder / "max_energy_range_uj").read_text())
                    (folder / "energy_uj").read_text()
                except (OSError, ValueError):
                    continue
                zones.append(RaplZone(f"{folder.name}/{label}", folder / "energy_uj", max_range))
            self._zones = zones
        return self._zones

    def available(self) -> str | None:
        if not self.root.exists():
            return f"no powercap interface ({self.root} missing)"
        if not list(self.root.glob("intel-rapl:*")):
            return f"no RAPL zones under {self.root}"
        if not self.zones():
            return f"RAPL energy files under {self.root} are not readable (root or a udev rule needed)"
        return None

    def _read(self) -> dict[str, int]:
        return {zone.name: int(zone.energy_path.read_text()) for zone in self.zones()}

    def start(self) -> None:
        self._t0 = self.clock()
        self._start = self._read()

    def stop(self) -> EnergyReading:
        end, seconds = self._read(), self.clock() - self._t0
        domains = {}
        for zone in self.zones():
            domains[zone.name] = counter_delta(self._start[zone.name], end[zone.name], zone.max_range_uj) / 1e6
        # Sub-zones (core, dram under a package) are nested inside their package's
        # count except dram, so the total is packages plus dram zones.
        total = sum(j for name, j in domains.items()
                    if name.count(":") == 1 or name.endswith("/dram"))
        return EnergyReading(self.name, total, seconds, "counter", domains)


# -- power integration ------------------------------------------------------------

class PowerIntegrator:
    """Samples ``read_watts()`` every ``interval_s`` on a thread; trapezoid-integrates to joules.

    The thread runs beside the timed loop, so its rate is low and its cost is
    measured: ``busy_s`` is the wall time spent inside the reads, reported with
    the reading (``EnergyReading.sampling``).
    """

    def __init__(self, read_watts: Callable[[], float], interval_s: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.read_watts, self.interval_s, self.clock = read_watts, interval_s, clock
        self.samples: list[tuple[float, float]] = []
        self.busy_s = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        t0 = self.clock()
        watts = float(self.read_watts())
        t1 = self.clock()
        self.busy_s += t1 - t0
        self.samples.append((t1, watts))

    def cost(self) -> dict[str, Any]:
        window = (self.samples[-1][0] - self.samples[0][0]) if len(self.samples) > 1 else 0.0
        return {"interval_s": self.interval_s, "samples": len(self.samples), "busy_s": self.busy_s,
                "busy_share": self.busy_s / window if window > 0 else None,
                "thread": "bakeoff-power"}

    def start(self) -> None:
        self.samples = []
        self.busy_s = 0.0
        self._stop.clear()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="bakeoff-power", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def stop(self) -> tuple[float, float, int]:
        """(joules, seconds, samples)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        return integrate(self.samples) + (len(self.samples),)


def integrate(samples: list[tuple[float, float]]) -> tuple[float, float]:
    """Trapezoid integral of (time s, watts) samples: (joules, seconds)."""
    joules = sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in zip(samples, samples[1:]))
    return joules, (samples[-1][0] - samples[0][0]) if samples else 0.0


# -- NVML ---------------------------------------------------------------------------

#: NVML clock-event (throttle) reason bits that slow a measurement down, by name.
NVML_THROTTLE_REASONS = {
    0x4: "software power cap",
    0x8: "hardware slowdown",
    0x20: "software thermal slowdown",
    0x40: "hardware thermal slowdown",
    0x80: "hardware power brake",
}


def throttle_names(mask: int) -> list[str]:
    return [name for bit, name in NVML_THROTTLE_REASONS.items() if mask & bit]


class NvmlMeter:
    """NVIDIA GPU energy through nvidia-ml-py: the total-energy counter (Volta and later),
    else integrated power samples. ``nvml`` is the ``pynvml`` module or a test double.

    With the counter, the sampling thread only reads utilisation and throttle
    reasons, once per ``counter_interval_s`` (1 s); integrating power needs
    ``interval_s`` (0.1 s). Either way its measured cost is in the reading.
    """

    name = "nvml"

    def __init__(self, index: int = 0, nvml: Any = None, interval_s: float = 0.1,
                 clock: Callable[[], float] = time.monotonic, counter_interval_s: float = 1.0) -> None:
        self.index, self._nvml, self.interval_s, self.clock = index, nvml, interval_s, clock
        self.counter_interval_s = counter_interval_s
        self._handle = None
        self._counter_start: int | None = None
        self._integrator: PowerIntegrator | None = None
        self._t0 = 0.0
        self._util: list[int] = []
        self._throttle = 0

    def _module(self):
        if self._nvml is None:
            import pynvml  # nvidia-ml-py

            self._nvml = pynvml
        return self._nvml

    def available(self) -> str | None:
        try:
            nvml = self._module()
        except ImportError:
            return "nvidia-ml-py is not installed"
        try:
            nvml.nvmlInit()
            self._handle = nvml.nvmlDeviceGetHandleByIndex(self.index)
        except Exception as exc:  # noqa: BLE001 - NVMLError and friends
            return f"NVML cannot open GPU {self.index} ({exc})"
        return None

    def _counter(self) -> int | None:
        try:
            return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))  # millijoules
        except Exception:  # noqa: BLE001 - NVML_ERROR_NOT_SUPPORTED before Volta
            return None

    def _read_throttle(self) -> None:
        nvml = self._nvml
        read = (getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)  # NVML >= 12.2 name
                or getattr(nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None))
        if read is None:
            return
        try:
            self._throttle |= int(read(self._handle))
        except Exception:  # noqa: BLE001 - NVML_ERROR_NOT_SUPPORTED on some boards
            pass

    def _watts(self) -> float:
        utilisation = self._nvml.nvmlDeviceGetUtilizationRates(self._handle)
        self._util.append(int(getattr(utilisation, "gpu", 0)))
        self._read_throttle()
        return self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0  # milliwatts

    def start(self) -> None:
        self._util, self._throttle = [], 0
        self._t0 = self.clock()
        self._counter_start = self._counter()
        interval = self.counter_interval_s if self._counter_start is not None else self.interval_s
        self._integrator = PowerIntegrator(self._watts, interval, self.clock)
        self._integrator.start()  # also samples utilisation when the counter is used

    def stop(self) -> EnergyReading:
        joules, seconds, samples = self._integrator.stop()
        utilisation = sum(self._util) / len(self._util) / 100 if self._util else None
        throttle = throttle_names(self._throttle)
        end = self._counter() if self._counter_start is not None else None
        if self._counter_start is not None and end is not None:
            return EnergyReading(self.name, (end - self._counter_start) / 1000.0, self.clock() - self._t0,
                                 "counter", {f"gpu{self.index}": (end - self._counter_start) / 1000.0},
                                 samples, utilisation, self._integrator.cost(), throttle)
        return EnergyReading(self.name, joules, seconds, "integrated power samples", {f"gpu{self.index}": joules},
                             samples, utilisation, self._integrator.cost(), throttle)


# -- Ascend npu-smi -------------------------------------------------------------------

_POWER = re.compile(r"power[^:\n]*:\s*([0-9]+(?:\.[0-9]+)?)", re.IGNORECASE)


def parse_npu_smi_power(text: str) -> float:
    """Watts from ``npu-smi info -t power -i N`` output (e.g. ``Power Dissipation(W) : 93.5``)."""
    match = _POWER.search(text)
    if not match:
        raise ValueError(f"no power reading in npu-smi output: {text.strip()[:120]!r}")
    return float(match.group(1))


class NpuSmiMeter:
    """Huawei Ascend power through ``npu-smi`` (power only, so energy is integrated)."""

    name = "npu-smi"

    def __init__(self, npu_id: int = 0, run: Callable[[list[str]], str] | None = None,
                 interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        # 1 s: every sample starts an npu-smi process (milliseconds of host CPU beside the loop).
        self.npu_id, self.interval_s, self.clock = npu_id, interval_s, clock
        self.run = run or (lambda cmd: subprocess.run(cmd, capture_output=True, text=True, timeout=5,
                                                       check=True).stdout)
        self._integrator: PowerIntegrator | None = None

    def _watts(self) -> float:
        return parse_npu_smi_power(self.run(["npu-smi", "info", "-t", "power", "-i", str(self.npu_id)]))

    def available(self) -> str | None:
        try:
            self._watts()
        except FileNotFoundError:
            return "npu-smi not found (no Ascend driver)"
        except Exception as exc:  # noqa: BLE001
            return f"npu-smi unreadable ({type(exc).__name__}: {exc})"
        return None

    def start(self) -> None:
        self._integrator = PowerIntegrator(self._watts, self.interval_s, self.clock)
        self._integrator.start()

    def stop(self) -> EnergyReading:
        joules, seconds, samples = self._integrator.stop()
        return EnergyReading(self.name, joules, seconds, "integrated power samples",
                             {f"npu{self.npu_id}": joules}, samples, sampling=self._integrator.cost())


# -- orchestration --------------------------------------------------------------------

class EnergySession:
    """Starts every available meter, stops them, and reports joules or why not."""

    def __init__(self, meters: Iterable[Meter]) -> None:
        self.meters = list(meters)
        self.reasons: dict[str, str] = {}
        self.active: list[Meter] = []
        self.readings: list[EnergyReading] = []

    def __enter__(self) -> "EnergySession":
        for meter in self.meters:
            reason = meter.available()
            if reason is None:
                try:
                    meter.start()
                    self.active.append(meter)
                except Exception as exc:  # noqa: BLE001 - a meter must never break a benchmark
                    self.reasons[meter.name] = f"failed to start ({exc})"
            else:
                self.reasons[meter.name] = reason
        return self

    def __exit__(self, *exc_info) -> None:
        self.readings = []
        for meter in self.active:
            try:
                self.readings.append(meter.stop())
            except Exception as error:  # noqa: BLE001 - a meter must never break a benchmark
                self.reasons[meter.name] = f"failed to read ({error})"

    def result(self, units: float | None, unit: str | None) -> dict[str, Any]:
        readings = self.readings
        if not readings:
            reason = ("no meter could read: " + "; ".join(f"{name}: {reason}" for name, reason in self.reasons.items())
                      if self.meters else "the backend offers no energy meter for this device")
            return {"joules": None, "reason": reason, "meters": [], "estimated": False}
        joules = sum(r.joules for r in readings)
        seconds = max(r.seconds for r in readings)
        result = {
            "joules": joules,
            "seconds": seconds,
            "average_watts": joules / seconds if seconds > 0 else None,
            "meters": [r.to_dict() for r in readings],
            "unavailable": dict(self.reasons),
            "estimated": False,
        }
        if units:
            result[f"joules_per_{unit}"] = joules / units
            result[f"{unit}s_per_joule"] = units / joules if joules > 0 else None
        return result


def measure_energy(meters: Iterable[Meter]) -> EnergySession:
    return EnergySession(meters)
