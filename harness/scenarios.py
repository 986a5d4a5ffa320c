"""Load scenarios, named and defined as in MLPerf Inference LoadGen.

* ``single-stream``: one query at a time, the next issued when the previous
  completes. Metric: p90 latency.
* ``offline``: all samples available at once; each step processes a whole
  batch back to back. Metric: throughput (work / busy time). Sweep
  ``--batch-size`` to find the best batch.
* ``server``: queries arrive as a Poisson process at a target QPS from a
  seeded generator, and wait in a FIFO queue while the device is busy.
  Latency is completion minus *arrival*, so queueing delay counts. The run is
  valid when p99 latency is within the SLO and the minimum duration (to the
  last *scheduled* query, as LoadGen measures it) and query count are met.
  ``find_max_qps`` binary-searches the highest valid QPS.

Every scenario returns its metric and a validity verdict with the reason.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from harness.interface import Prepared
from harness.stats import percentile
from harness.timing import HOST, QueryFailed, Sampling, Stopping, Timebase, sample

SINGLE_STREAM, OFFLINE, SERVER = "single-stream", "offline", "server"
SCENARIOS = (SINGLE_STREAM, OFFLINE, SERVER)


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


# -- server ------------------------------------------------------------------------


def poisson_arrivals_ns(qps: float, settings: ServerSettings) -> list[int]:
    """Arrival offsets (ns from the start) of a seeded Poisson process at ``qps``.

    Generates until both the minimum query count and the minimum duration to
    the last scheduled query are met.
    """
    rng = random.Random(settings.seed)
    offsets, t = [], 0.0
    min_duration_ns = settings.min_duration_s * 1e9
    while len(offsets) < settings.min_queries or t < min_duration_ns:
        t += rng.expovariate(qps) * 1e9
        offsets.append(int(t))
    return offsets


@dataclass
class ServerTrial:
    qps: float
    latencies_ns: list[int]
    waits_ns: list[int]
    scheduled_ns: int
    elapsed_ns: int
    completed: int
    planned: int
    p99_s: float
    valid: bool
    reason: str
    #: Token-streaming workloads: per query, each token's ns offset from its *arrival*.
    token_offsets_ns: list[list[int]] | None = None
    #: Failed queries by cause (remote backends); not in ``latencies_ns``.
    failures: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "qps": self.qps,
            "p99_s": self.p99_s,
            "valid": self.valid,
            "reason": self.reason,
            "completed": self.completed,
            "mean_wait_s": (sum(self.waits_ns) / len(self.waits_ns) / 1e9) if self.waits_ns else None,
        }


def run_server_trial(
    prepared: Prepared, qps: float, settings: ServerSettings, timebase: Timebase = HOST
) -> ServerTrial:
    """Serve one Poisson arrival sequence at ``qps`` on a single FIFO server."""
    offsets = poisson_arrivals_ns(qps, settings)
    step, synchronize, now = prepared.step, prepared.synchronize, timebase.now
    # Early stop: once more than 1% of the planned queries have missed the SLO,
    # p99 cannot meet it, so the run is certainly invalid (this keeps the
    # max-QPS search fast). A server far behind schedule is stopped too.
    slo_ns = settings.latency_slo_s * 1e9
    allowed_violations = math.ceil(0.01 * len(offsets))
    give_up_ns = 2 * offsets[-1] + min(10 * slo_ns, 60e9)
    streaming = getattr(prepared, "step_streaming", None)
    latencies, waits, token_offsets = [], [], []
    failures: dict[str, int] = {}
    violations = 0
    base = now()
    overloaded = stopped_early = False
    for offset in offsets:
        arrival = base + offset
        if now() < arrival:
            timebase.sleep_until(arrival)
        if streaming is not None:  # token-streaming workloads: timestamp every token, from the arrival
            marks: list[int] = []

            def mark(marks=marks, arrival=arrival) -> None:
                synchronize()
                marks.append(now() - arrival)
        started = now()
        try:
            if streaming is None:
                step()
            else:
                streaming(mark)
            synchronize()
        except QueryFailed as error:
            failures[error.cause] = failures.get(error.cause, 0) + 1
            continue
        if streaming is not None:
            token_offsets.append(marks)
        finished = now()
        latencies.append(finished - arrival)
        waits.append(started - arrival)
        violations += latencies[-1] > slo_ns
        if violations > allowed_violations:
            stopped_early = True
            break
        if finished - base > give_up_ns:
            overloaded = True
            break
    elapsed = now() - base
    if not latencies:
        raise RuntimeError(f"every query failed ({', '.join(f'{k}: {v}' for k, v in failures.items())})")
    p99 = percentile(sorted(latencies), 99) / 1e9
    scheduled_s = offsets[len(latencies) - 1] / 1e9
    if stopped_early:
        valid, reason = False, (
            f"p99 latency above SLO {settings.latency_slo_s * 1e3:.4g} ms: {violations} of "
            f"{len(offsets)} queries missed it (more than 1%); stopped early"
        )
    elif overloaded:
        valid, reason = False, f"overloaded: {len(latencies)} of {len(offsets)} queries done in {elapsed / 1e9:.3g} s"
    elif p99 > settings.latency_slo_s:
        valid, reason = False, f"p99 latency {p99 * 1e3:.4g} ms > SLO {settings.latency_slo_s * 1e3:.4g} ms"
    elif scheduled_s < settings.min_duration_s or len(latencies) < settings.min_queries:
        valid, reason = False, "minimum duration or query count not met"
    else:
        valid, reason = True, (
            f"p99 latency {p99 * 1e3:.4g} ms <= SLO {settings.latency_slo_s * 1e3:.4g} ms "
            f"over {len(latencies)} queries, {scheduled_s:.3g} s"
        )
    token_bounds = check_token_bounds(token_offsets, settings)
    if token_bounds is not None and not stopped_early and not overloaded:
        bounds_ok, bounds_reason = token_bounds
        valid = valid and bounds_ok
        reason = f"{reason}; {bounds_reason}" if valid or not bounds_ok else reason
    return ServerTrial(qps, latencies, waits, offsets[len(latencies) - 1], elapsed, len(latencies),
                       len(offsets), p99, valid, reason, token_offsets or None, failures)


def check_token_bounds(token_offsets: list[list[int]], settings: ServerSettings) -> tuple[bool, str] | None:
    """MLPerf's LLM server constraints: p99 TTFT and p99 TPOT within their bounds.

    TTFT counts from the query's arrival, so queueing delay is included.
    Returns ``None`` when no bound is set; bounds set for a workload that
    streams no tokens make the run invalid rather than silently unchecked.
    """
    bounds = [(name, bound) for name, bound in (("TTFT", settings.ttft_bound_s), ("TPOT", settings.tpot_bound_s))
              if bound is not None]
    if not bounds:
        return None
    if not token_offsets:
        return False, "TTFT/TPOT bounds set, but this workload streams no tokens"
    samples = {
        "TTFT": sorted(marks[0] for marks in token_offsets),
        "TPOT": sorted((marks[-1] - marks[0]) / (len(marks) - 1) for marks in token_offsets if len(marks) > 1),
    }
    problems, checks = [], []
    for name, bound in bounds:
        if not samples[name]:
            problems.append(f"no {name} samples")
            continue
        p99 = percentile(samples[name], 99) / 1e9
        text = f"p99 {name} {p99 * 1e3:.4g} ms {'<=' if p99 <= bound else '>'} bound {bound * 1e3:.4g} ms"
        (checks if p99 <= bound else problems).append(text)
    return (not problems), "; ".join(problems or checks)


def estimate_service_s(prepared: Prepared, timebase: Timebase, steps: int = 20) -> float:
    """Median time of ``steps`` back-to-back steps: the capacity probe for the QPS search."""
    times = []
    for _ in range(steps):
        t0 = timebase.now()
        prepared.step()
        prepared.synchronize()
        times.append(timebase.now() - t0)
    times.sort()
    return max(times[len(times) // 2], 1) / 1e9


def find_max_qps(
    prepared: Prepared, settings: ServerSettings, timebase: Timebase = HOST,
    trial: Callable[..., ServerTrial] = run_server_trial,
) -> tuple[ServerTrial | None, list[ServerTrial]]:
    """Binary search for the highest QPS whose server run is valid.

    The bracket starts at the capacity bound 1/service time (utilisation 1,
    never sustainable) and 1/20 of it. Every trial reuses the same seed, so
    neighbouring QPS values see the same arrival pattern, only stretched:
    validity is then monotone in QPS and the search converges.
    """
    capacity = 1.0 / estimate_service_s(prepared, timebase)
    low, high = capacity / 20, capacity
    trials = [trial(prepared, low, settings, timebase)]
    if not trials[-1].valid:
        return None, trials
    best = trials[-1]
    for _ in range(4):  # a noisy capacity probe may undershoot: widen until high fails
        trials.append(trial(prepared, high, settings, timebase))
        if not trials[-1].valid:
            break
        low, best, high = high, trials[-1], high * 2
    while (high - low) / low > settings.search_tolerance:
        middle = (low + high) / 2
        trials.append(trial(prepared, middle, settings, timebase))
        if trials[-1].valid:
            low, best = middle, trials[-1]
        else:
            high = middle
    return best, trials


def run_server(
    prepared: Prepared, stopping: Stopping, timebase: Timebase = HOST, *,
    server: ServerSettings, work_per_step: float, unit: str, **_: Any,
) -> ScenarioResult:
    for _ in range(stopping.warmup):
        try:
            prepared.step()
            prepared.synchronize()
        except QueryFailed:
            pass  # warm-up failures are not part of the measured trial
    if server.find_max_qps:
        best, trials = find_max_qps(prepared, server, timebase)
        chosen = best or trials[-1]
        metric = {"name": "max_valid_qps", "value": best.qps if best else None, "unit": "queries/s"}
        valid = best is not None
        reason = (f"highest valid QPS {best.qps:.4g} within {server.search_tolerance:.0%}"
                  if best else f"no valid QPS: even {trials[0].qps:.4g} QPS fails ({trials[0].reason})")
    else:
        chosen = run_server_trial(prepared, server.target_qps, server, timebase)
        trials = [chosen]
        metric = {"name": "qps", "value": server.target_qps, "unit": "queries/s"}
        valid, reason = chosen.valid, chosen.reason
    sampling = Sampling(
        latencies_ns=chosen.latencies_ns, host_latencies_ns=None, timer=timebase.name,
        timer_resolution_ns=timebase.resolution_ns, elapsed_ns=chosen.elapsed_ns,
        stop_reason=f"{chosen.completed} Poisson arrivals at {chosen.qps:.4g} QPS served",
        target_reached=None, achieved_ci=None, token_offsets_ns=chosen.token_offsets_ns,
        failures=dict(chosen.failures),
    )
    achieved_qps = chosen.completed / (chosen.elapsed_ns / 1e9) if chosen.elapsed_ns else None
    extra = {
        "target_qps": chosen.qps,
        "achieved_qps": achieved_qps,
        "mean_wait_s": chosen.summary()["mean_wait_s"],
        "latency_slo_s": server.latency_slo_s,
        "seed": server.seed,
        "trials": [t.summary() for t in trials],
    }
    throughput = None
    if achieved_qps:
        throughput = {"value": achieved_qps * work_per_step, "unit": f"{unit}/s", "ci_low": None,
                      "ci_high": None, "basis": "completed queries x work per query / wall time"}
    return ScenarioResult(sampling, metric, valid, reason, throughput, extra)


RUNNERS: dict[str, Callable[..., ScenarioResult]] = {
    SINGLE_STREAM: run_single_stream,
    OFFLINE: run_offline,
    SERVER: run_server,
}
