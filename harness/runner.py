"""The run loop: the one place that owns the clock.

:func:`measure` times ``step(); synchronize()`` with a monotonic nanosecond
clock and keeps every iteration's latency. :func:`execute` is what a worker
does for one benchmark: resolve the plugins, prepare outside the timed region,
measure, and turn anything that goes wrong into a structured outcome instead
of an exception. Launchers run :func:`execute` inline or in a fresh process.

The clock is injectable so the loop is tested with fake clocks, not wall time.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from harness.errors import Unsupported
from harness.interface import Availability, Prepared
from harness.plugins import Registry, describe_exception
from harness.spec import BenchmarkSpec

#: A clock returns integer nanoseconds from an arbitrary, monotonic origin.
Clock = Callable[[], int]

DEFAULT_CLOCK: Clock = time.perf_counter_ns
DEFAULT_TIMER_NAME = "time.perf_counter_ns"

# Outcome statuses. Only "ok" outcomes carry a measurement and can be ranked.
OK, FAILED, UNSUPPORTED, UNAVAILABLE = "ok", "failed", "unsupported", "unavailable"
STATUSES = (OK, FAILED, UNSUPPORTED, UNAVAILABLE)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Measurement:
    """Raw samples of one benchmark: one latency per timed iteration, in ns."""

    latencies_ns: tuple[int, ...]
    warmup: int
    timer: str
    timer_resolution_ns: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["latencies_ns"] = list(self.latencies_ns)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Measurement":
        return cls(
            latencies_ns=tuple(int(v) for v in data["latencies_ns"]),
            warmup=int(data["warmup"]),
            timer=str(data["timer"]),
            timer_resolution_ns=float(data["timer_resolution_ns"]),
        )


def clock_resolution_ns(timer_name: str = DEFAULT_TIMER_NAME) -> float:
    """The declared resolution of Python's perf_counter, in ns."""
    return time.get_clock_info("perf_counter").resolution * 1e9


def measure(
    prepared: Prepared,
    *,
    warmup: int,
    iterations: int,
    clock: Clock = DEFAULT_CLOCK,
    timer_name: str = DEFAULT_TIMER_NAME,
    timer_resolution_ns: float | None = None,
) -> Measurement:
    """Run ``warmup`` untimed steps, then time ``iterations`` steps one by one.

    Each sample is ``clock()`` around ``step(); synchronize()``: the step is
    only done when the device says so. Warm-up steps synchronize too, so no
    queued warm-up work leaks into the first timed sample.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    step, synchronize = prepared.step, prepared.synchronize
    for _ in range(warmup):
        step()
        synchronize()
    latencies: list[int] = []
    append = latencies.append
    for _ in range(iterations):
        start = clock()
        step()
        synchronize()
        append(clock() - start)
    return Measurement(
        latencies_ns=tuple(latencies),
        warmup=warmup,
        timer=timer_name,
        timer_resolution_ns=(
            timer_resolution_ns if timer_resolution_ns is not None else clock_resolution_ns()
        ),
    )


@dataclass
class Outcome:
    """What a worker reports for one benchmark: a measurement or the reason there is none."""

    status: str
    measurement: Measurement | None = None
    failure: dict[str, Any] | None = None
    reason: str | None = None
    unit: str | None = None
    work_per_step: float | None = None
    backend_version: str | None = None
    device_info: dict[str, Any] | None = None
    peak_device_memory_bytes: int | None = None
    prepare_s: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["measurement"] = self.measurement.to_dict() if self.measurement else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Outcome":
        data = dict(data)
        if data.get("measurement") is not None:
            data["measurement"] = Measurement.from_dict(data["measurement"])
        return cls(**data)

    @classmethod
    def failed(cls, cause: str, message: str, **extra: Any) -> "Outcome":
        """A failure with a machine-readable ``cause`` (error, signal, exit, timeout, ...)."""
        failure = {"cause": cause, "message": message}
        failure.update({k: v for k, v in extra.items() if v is not None})
        return cls(status=FAILED, failure=failure, reason=f"{cause}: {message}")


def _find_device(devices: list[Any], device: str) -> Any | None:
    return next((d for d in devices if d.device == device), None)


def execute(
    spec: BenchmarkSpec,
    registry: Registry | None = None,
    *,
    clock: Clock = DEFAULT_CLOCK,
    timer_name: str = DEFAULT_TIMER_NAME,
) -> Outcome:
    """Run one benchmark to an :class:`Outcome`. Exceptions never escape.

    (A crash of the interpreter itself, a signal or an out-of-memory kill,
    cannot be caught here; the subprocess launcher turns those into outcomes.)
    """
    started_at = utc_now()
    outcome = _execute(spec, registry or Registry(), clock, timer_name)
    outcome.started_at = started_at
    outcome.finished_at = utc_now()
    return outcome


def _execute(spec: BenchmarkSpec, registry: Registry, clock: Clock, timer_name: str) -> Outcome:
    try:
        backend = registry.backend(spec.backend)
        workload = registry.workload(spec.workload, spec.params_dict)
        availability = backend.probe()
        if not isinstance(availability, Availability) or not availability.available:
            reason = getattr(availability, "reason", None) or "backend unavailable"
            return Outcome(status=UNAVAILABLE, reason=reason)
        device = _find_device(list(backend.devices()), spec.device)
        if device is None:
            return Outcome(status=UNAVAILABLE, reason=f"device {spec.device!r} not found")
        if not device.available:
            return Outcome(status=UNAVAILABLE, reason=device.reason or "device unavailable")
    except Exception as exc:  # noqa: BLE001 - every failure becomes a record
        return Outcome.failed("error", describe_exception(exc), traceback=traceback.format_exc())

    common = dict(
        unit=workload.unit,
        work_per_step=float(workload.work_per_step(spec.batch_size)),
        backend_version=availability.version,
        device_info=device.to_dict(),
    )
    try:
        prepare_start = clock()
        prepared = backend.prepare(workload, spec)
        prepare_s = (clock() - prepare_start) / 1e9
    except Unsupported as exc:
        return Outcome(status=UNSUPPORTED, reason=str(exc), **common)
    except Exception as exc:  # noqa: BLE001
        outcome = Outcome.failed(
            "error", f"prepare failed: {describe_exception(exc)}", traceback=traceback.format_exc()
        )
        outcome.__dict__.update(common)
        return outcome
    try:
        measurement = measure(
            prepared,
            warmup=spec.warmup,
            iterations=spec.iterations,
            clock=clock,
            timer_name=timer_name,
        )
        peak = prepared.peak_memory_bytes()
        details = dict(prepared.details)
    except Exception as exc:  # noqa: BLE001
        outcome = Outcome.failed(
            "error", f"step failed: {describe_exception(exc)}", traceback=traceback.format_exc()
        )
        outcome.__dict__.update(common, prepare_s=prepare_s)
        return outcome
    finally:
        try:
            prepared.close()
        except Exception:  # noqa: BLE001 - a failing close must not hide the measurement
            pass
    return Outcome(
        status=OK,
        measurement=measurement,
        peak_device_memory_bytes=peak,
        prepare_s=prepare_s,
        details=details,
        **common,
    )
