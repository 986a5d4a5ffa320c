"""What every scenario shares: the server settings, the result type, and MLPerf's single-stream and offline."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.contract.interface import Prepared
from harness.analysis.stats import percentile
from harness.engine.timing import HOST, Sampling, Stopping, Timebase, sample


#: The arrival processes of the server scenario.
ARRIVALS = ("poisson", "gamma", "constant", "trace")

#: How the server scenario waits for each arrival: ``spin`` sleeps until shortly before it and
#: spins the rest (the harness starts a query a few µs late), ``sleep`` only sleeps (late by the
#: OS's wake-up, ~0.1 ms on a VM: what MLPerf LoadGen's issue thread does, and what a real
#: server's thread woken by each request pays too).
WAKE_UPS = ("spin", "sleep")

#: The built-in scenarios' names. Others come from plugins (``bakeoff scenarios`` lists all).
SINGLE_STREAM, OFFLINE, SERVER, CONCURRENT = "single-stream", "offline", "server", "concurrent"


@dataclass(frozen=True)
class ServerSettings:
    """Settings of the server scenario. Times in seconds."""

    target_qps: float | None = None
    latency_slo_s: float = 0.1
    min_queries: int = 1000
    min_duration_s: float = 5.0
    find_max_qps: bool = False
    seed: int = 0
    #: Relative width at which the max-QPS search stops.
    search_tolerance: float = 0.02
    #: LLM bounds (MLPerf's TTFT/TPOT constraints); checked when a workload reports tokens.
    ttft_bound_s: float | None = None
    tpot_bound_s: float | None = None
    #: Concurrent scenario: clients in the closed loop, or search for the most that stay valid.
    concurrency: int = 4
    find_max_concurrency: bool = False
    max_concurrency: int = 256
    #: Server scenario: the arrival process (``poisson``, ``gamma`` or ``constant``) and, for
    #: gamma, its shape: ``burstiness`` below 1 clumps arrivals, above 1 evens them out, 1 is
    #: Poisson (``vllm bench serve --burstiness``'s definition).
    arrival: str = "poisson"
    burstiness: float = 1.0
    #: ``arrival = "trace"``: a CSV or JSONL file whose ``arrival_s`` column gives each request's
    #: arrival (seconds from the start); the rate is the trace's own.
    arrival_trace: str | None = None
    #: Seconds over which the rate rises linearly from zero to the target before holding it.
    ramp_up_s: float = 0.0
    #: One of :data:`WAKE_UPS`. ``sleep`` compares like for like with LoadGen (whose p50 includes
    #: its issue thread's oversleep); ``spin`` keeps the harness's own lateness out of the latency.
    wake_up: str = "spin"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScenarioResult:
    sampling: Sampling
    metric: dict[str, Any]
    valid: bool
    validity_reason: str
    throughput: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: Caveats about the measurement itself (e.g. the harness issued queries late); they
    #: become record warnings.
    warnings: list[str] = field(default_factory=list)


def _duration_checks(sampling: Sampling, stopping: Stopping) -> tuple[bool, str]:
    n, seconds = len(sampling.latencies_ns), sampling.elapsed_ns / 1e9
    if n == 0:
        failed = ", ".join(f"{cause}: {count}" for cause, count in sampling.failures.items())
        raise RuntimeError(f"no query completed ({failed or 'nothing was timed'})")
    problems = []
    if n < stopping.min_iterations:
        problems.append(f"{n} queries < minimum {stopping.min_iterations}")
    if seconds < stopping.min_duration_s:
        problems.append(f"ran {seconds:.3g} s < minimum {stopping.min_duration_s:g} s")
    if problems:
        return False, "; ".join(problems)
    return True, f"{n} queries over {seconds:.3g} s meet the minimums"


def run_single_stream(prepared: Prepared, stopping: Stopping, timebase: Timebase = HOST, **_: Any) -> ScenarioResult:
    sampling = sample(prepared, stopping, timebase)
    valid, reason = _duration_checks(sampling, stopping)
    p90 = percentile(sorted(sampling.latencies_ns), 90) / 1e9
    return ScenarioResult(sampling, {"name": "p90_latency", "value": p90, "unit": "s"}, valid, reason)


def run_offline(
    prepared: Prepared, stopping: Stopping, timebase: Timebase = HOST, *, work_per_step: float, unit: str, **_: Any
) -> ScenarioResult:
    """Throughput over the busy time, with a 95% CI from the mean step time."""
    sampling = sample(prepared, stopping, timebase)
    valid, reason = _duration_checks(sampling, stopping)
    latencies = sampling.latencies_ns
    n = len(latencies)
    mean_s = sum(latencies) / n / 1e9
    throughput = work_per_step / mean_s
    ci_low = ci_high = None
    if n > 1:
        stdev = math.sqrt(sum((v / 1e9 - mean_s) ** 2 for v in latencies) / (n - 1))
        half = 1.959963984540054 * stdev / math.sqrt(n)
        ci_low = work_per_step / (mean_s + half)
        ci_high = work_per_step / (mean_s - half) if mean_s > half else None
    rate = {
        "value": throughput,
        "unit": f"{unit}/s",
        "ci_low": ci_low,
        "ci_high": ci_high,
        "basis": "total work / total busy time; CI from the mean step time (normal approximation)",
    }
    return ScenarioResult(
        sampling, {"name": "throughput", "value": throughput, "unit": f"{unit}/s"}, valid, reason, rate
    )
