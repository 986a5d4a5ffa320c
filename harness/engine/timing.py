"""Clocks, device timers and the sampling loop with adaptive stopping.

The runner owns the clock. Everything here takes a :class:`Timebase` (a
monotonic nanosecond clock plus a way to wait until a moment), so tests drive
the loops with fake time and never depend on the wall clock.

Adaptive stopping, after torch.utils.benchmark's ``adaptive_autorange`` but on
the statistic we report: keep sampling until the half-width of the median's
95% confidence interval is within ``target_ci`` of the median, once at least
``min_iterations`` samples and ``min_duration_s`` have passed; give up at
``max_duration_s`` and say so in the record.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from harness.contract.capabilities import StreamedReply, StreamingStep, capability
from harness.contract.interface import Prepared
from harness.analysis.stats import median_ci_ranks

HOST_TIMER = "time.perf_counter_ns"
#: Hard cap on samples per benchmark (8 MB of ints), so a clock too coarse to
#: see a step can never make adaptive stopping loop forever.
MAX_SAMPLES = 1_000_000


class Timebase(Protocol):
    """A monotonic clock in integer nanoseconds and a way to wait for a moment on it."""

    name: str
    resolution_ns: float

    def now(self) -> int: ...

    def sleep_until(self, deadline_ns: int, *, spin: bool = True) -> None:
        """Wait for ``deadline_ns``; ``spin=False`` only sleeps (late by the OS's wake-up, but
        leaving the CPU and the interpreter to other threads)."""

    def calibrate(self) -> dict[str, Any]:
        """Measure whatever ``sleep_until`` needs to wake on time; called before a timed
        schedule starts, never inside one. Returns the facts measured, for the record."""


class HostTimebase:
    """The real clock: ``time.perf_counter_ns``.

    ``sleep_until`` sleeps until shortly before the deadline, then spins to it.
    How early it must wake is the host's own sleep overshoot (timer slack, a
    VM's wake-up latency), which varies from 50 µs on bare metal to several
    hundred µs on a busy VM: :meth:`calibrate` measures it, so a scheduled
    arrival is issued on time rather than late by one oversleep.
    """

    name = HOST_TIMER
    resolution_ns = time.get_clock_info("perf_counter").resolution * 1e9
    #: Spin threshold before calibration, and its bounds after.
    DEFAULT_SPIN_NS = 200_000
    MIN_SPIN_NS, MAX_SPIN_NS = 50_000, 5_000_000
    #: Calibration: this many sleeps of this length (about 50 ms in all).
    CALIBRATION_SLEEPS, CALIBRATION_SLEEP_NS = 40, 1_000_000

    def __init__(self) -> None:
        self.spin_ns = self.DEFAULT_SPIN_NS
        self.calibration: dict[str, Any] | None = None

    def now(self) -> int:
        return time.perf_counter_ns()

    def sleep_until(self, deadline_ns: int, *, spin: bool = True) -> None:
        spin_ns = self.spin_ns if spin else 0
        while True:
            remaining = deadline_ns - time.perf_counter_ns()
            if remaining <= 0:
                return
            if remaining > spin_ns:
                time.sleep((remaining - spin_ns) / 1e9)

    def calibrate(self) -> dict[str, Any]:
        """Time a few short sleeps; spin for 1.5x their p99 overshoot plus 50 µs. Cached."""
        if self.calibration is None:
            oversleeps = []
            for _ in range(self.CALIBRATION_SLEEPS):
                t0 = time.perf_counter_ns()
                time.sleep(self.CALIBRATION_SLEEP_NS / 1e9)
                oversleeps.append(time.perf_counter_ns() - t0 - self.CALIBRATION_SLEEP_NS)
            oversleeps.sort()
            p99 = oversleeps[min(len(oversleeps) - 1, int(0.99 * len(oversleeps)))]
            self.spin_ns = int(min(self.MAX_SPIN_NS, max(self.MIN_SPIN_NS, 1.5 * p99 + 50_000)))
            self.calibration = {
                "spin_threshold_ns": self.spin_ns,
                "sleep_oversleep_p50_ns": oversleeps[len(oversleeps) // 2],
                "sleep_oversleep_p99_ns": p99,
                "method": f"{self.CALIBRATION_SLEEPS} sleeps of {self.CALIBRATION_SLEEP_NS / 1e6:g} ms; "
                          "spin for 1.5 x p99 oversleep + 50 µs",
            }
        return dict(self.calibration)


HOST = HostTimebase()


@runtime_checkable
class DeviceTimer(Protocol):
    """A backend's own timer, e.g. a pair of CUDA or NPU events.

    The runner calls ``start()``, ``step()``, ``stop()``, ``synchronize()``
    and then ``elapsed_ns()``; the device timestamps its own queue, so the
    sample excludes host-side launch latency. ``name`` lands in the record.
    """

    name: str
    resolution_ns: float

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def elapsed_ns(self) -> int: ...


@dataclass(frozen=True)
class Stopping:
    """When to stop sampling. ``iterations`` set means a fixed count (no adaptivity)."""

    warmup: int = 5
    iterations: int | None = None
    min_iterations: int = 10
    min_duration_s: float = 1.0
    max_duration_s: float = 10.0
    target_ci: float = 0.02

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def adaptive(self) -> bool:
        return self.iterations is None

    def with_fixed_iterations(self, iterations: int) -> "Stopping":
        """A fixed count: the user chose how many samples, so the minimums follow that choice."""
        return replace(self, iterations=iterations,
                       min_iterations=min(iterations, self.min_iterations), min_duration_s=0.0)


def relative_ci_half_width(samples: list[int]) -> float | None:
    """Half-width of the median's 95% CI relative to the median; ``None`` below 6 samples."""
    ranks = median_ci_ranks(len(samples))
    if ranks is None:
        return None
    ordered = sorted(samples)
    n = len(ordered)
    median = (ordered[(n - 1) // 2] + ordered[n // 2]) / 2
    if median <= 0:
        return None
    return (ordered[ranks[1]] - ordered[ranks[0]]) / 2 / median


class QueryFailed(Exception):
    """One query failed and the run goes on: raised by a remote backend's step for an HTTP error,
    a dropped or malformed stream or a timeout. It is counted by cause, never timed."""

    def __init__(self, cause: str, detail: str = "") -> None:
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause, self.detail = cause, detail


#: Stop sampling once this many queries failed and they outnumber the successes.
MAX_FAILURES_BEFORE_GIVING_UP = 10


@dataclass
class Sampling:
    """Raw samples plus how and why sampling stopped."""

    latencies_ns: list[int]
    host_latencies_ns: list[int] | None
    timer: str
    timer_resolution_ns: float
    elapsed_ns: int
    stop_reason: str
    target_reached: bool | None
    achieved_ci: float | None
    #: For token-streaming workloads: per sample, each token's time from the sample's start.
    token_offsets_ns: list[list[int]] | None = None
    #: Wall-clock time (Unix ns) of the first timed iteration: ties a worker's timeline
    #: to the launcher's (worker start cost, fleet timelines).
    started_unix_ns: int | None = None
    #: Failed queries by cause (remote backends); they are not in ``latencies_ns``.
    failures: dict[str, int] = field(default_factory=dict)


class TokenMarks(list):
    """One request's mark times (ns from its start or arrival), and the number of tokens it
    generated where the step reported one (:class:`~harness.contract.capabilities.StreamingStep`)."""

    tokens: int | None = None
    #: The mark that carried the first answer token of a reasoning model (``None``: the first).
    first_answer: int | None = None

    def token_count(self) -> int:
        """Tokens generated: the step's own count, else one per mark."""
        return self.tokens if self.tokens else len(self)


def streamed(streaming: Any, mark: Any, marks: TokenMarks) -> TokenMarks:
    """Run one streaming step into ``marks`` and keep the token count (and, for a reasoning
    model, the first answer's mark) it reports."""
    counted = streaming(mark)
    if isinstance(counted, StreamedReply):
        marks.first_answer = counted.first_answer_mark
        counted = counted.tokens
    marks.tokens = int(counted) if isinstance(counted, int) and not isinstance(counted, bool) and counted > 0 else None
    return marks


def warm_up(prepared: Prepared, steps: int) -> None:
    """Untimed steps before measuring (caches, lazy initialisation, autotuning). A failed query
    during warm-up (a remote backend) is neither an error nor counted: it was never measured."""
    for _ in range(steps):
        try:
            prepared.step()
            prepared.synchronize()
        except QueryFailed:
            pass


def sample(prepared: Prepared, stopping: Stopping, timebase: Timebase = HOST) -> Sampling:
    """Time steps one at a time until ``stopping`` says enough.

    Warm-up is not done here: the runner owns it (:func:`warm_up` before the
    energy meters start, so their window holds only timed queries), and every
    scenario receives an already warm workload. ``stopping.warmup`` is ignored.

    Each sample is ``step(); synchronize()`` on the host clock, or the
    backend's device timer when ``prepared.device_timer()`` offers one (the
    host latency is then kept too). The CI check runs after every ~10% growth
    in sample count, so the loop stays O(n log n).
    """
    step, synchronize = prepared.step, prepared.synchronize
    failures: dict[str, int] = {}

    def failed(error: QueryFailed) -> None:
        failures[error.cause] = failures.get(error.cause, 0) + 1

    device_timer = prepared.device_timer()
    streamer = capability(prepared, StreamingStep)
    streaming = streamer.step_streaming if streamer is not None else None
    now = timebase.now
    latencies: list[int] = []
    token_offsets: list[list[int]] | None = [] if streaming is not None else None
    host: list[int] | None = [] if device_timer is not None else None
    started_unix_ns = time.time_ns()
    start = now()
    next_check = max(stopping.min_iterations, 6)
    target_reached: bool | None = None
    achieved: float | None = None
    while True:
        if streaming is not None:
            # One sample is one request; ``mark`` syncs and timestamps each token.
            marks = TokenMarks()

            def mark() -> None:
                synchronize()
                marks.append(now())

            t0 = now()
            try:
                streamed(streaming, mark, marks)
                synchronize()
            except QueryFailed as error:
                failed(error)
                if sum(failures.values()) >= max(MAX_FAILURES_BEFORE_GIVING_UP, len(latencies) + 1):
                    reason = f"stopped: {sum(failures.values())} queries failed, {len(latencies)} succeeded"
                    break
                continue
            latencies.append(now() - t0)
            offsets = TokenMarks(m - t0 for m in marks)
            offsets.tokens, offsets.first_answer = marks.tokens, marks.first_answer
            token_offsets.append(offsets)
        elif device_timer is None:
            t0 = now()
            step()
            synchronize()
            latencies.append(now() - t0)
        else:
            t0 = now()
            device_timer.start()
            step()
            device_timer.stop()
            synchronize()
            host.append(now() - t0)
            latencies.append(int(device_timer.elapsed_ns()))
        n = len(latencies)
        elapsed = now() - start
        if not stopping.adaptive:
            if n >= stopping.iterations:
                reason = f"fixed count of {stopping.iterations} iterations"
                break
            continue
        if elapsed >= stopping.max_duration_s * 1e9 or n >= MAX_SAMPLES:
            achieved = relative_ci_half_width(latencies)
            target_reached = achieved is not None and achieved <= stopping.target_ci
            reason = (f"max duration {stopping.max_duration_s:g} s reached" if n < MAX_SAMPLES
                      else f"sample cap of {MAX_SAMPLES} reached")
            break
        if n >= next_check and elapsed >= stopping.min_duration_s * 1e9:
            achieved = relative_ci_half_width(latencies)
            if achieved is not None and achieved <= stopping.target_ci:
                target_reached = True
                reason = f"median CI half-width {achieved:.2%} <= target {stopping.target_ci:.2%}"
                break
            next_check = n + max(1, n // 10)
    if not stopping.adaptive:
        achieved = relative_ci_half_width(latencies)
    return Sampling(
        latencies_ns=latencies,
        host_latencies_ns=host,
        timer=device_timer.name if device_timer is not None else timebase.name,
        timer_resolution_ns=(
            device_timer.resolution_ns if device_timer is not None else timebase.resolution_ns
        ),
        elapsed_ns=now() - start,
        stop_reason=reason,
        target_reached=target_reached,
        achieved_ci=achieved,
        token_offsets_ns=token_offsets,
        started_unix_ns=started_unix_ns,
        failures=failures,
    )


class _NullPrepared(Prepared):
    def step(self) -> None:
        pass


def harness_overhead_ns(timebase: Timebase = HOST, iterations: int = 2000) -> float:
    """Median cost of one timed iteration around a step that does nothing, in ns.

    Recorded with every measurement so a reader can tell how much of a short
    latency is the harness's own clock reads and calls.
    """
    null = _NullPrepared()
    step, synchronize, now = null.step, null.synchronize, timebase.now
    samples = []
    for _ in range(iterations):
        t0 = now()
        step()
        synchronize()
        samples.append(now() - t0)
    samples.sort()
    return float(samples[len(samples) // 2])
