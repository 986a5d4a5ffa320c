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
* ``concurrent``: a closed loop of N clients, each sending its next query as
  soon as its previous one completes (what serving benchmarks call fixed
  concurrency). Only for backends whose queries may overlap
  (``Prepared.concurrent_safe``: an HTTP endpoint, not one local session).
  Metrics: throughput over the wall time, requests/s, and goodput: the rate
  of queries meeting every SLO (E2E latency, and TTFT/TPOT bounds where
  tokens stream). Valid when p99 latency and the token bounds meet the SLO
  and the minimums are met. ``find_max_concurrency`` doubles N until a run
  fails.

Every scenario returns its metric and a validity verdict with the reason.
Each is a :class:`harness.interface.Scenario` registered under the
entry-point group ``bakeoff.scenarios``, as a plugin's scenario is.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from harness.capabilities import ConcurrentSteps, StreamingStep, capability
from harness.interface import Prepared, Scenario
from harness.stats import percentile
from harness.timing import HOST, QueryFailed, Sampling, Stopping, Timebase, sample, warm_up

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


# -- server ------------------------------------------------------------------------


def poisson_arrivals_ns(qps: float, settings: ServerSettings) -> list[int]:
    """Arrival offsets (ns from the start) of a seeded Poisson process at ``qps``.

    ``max(min_queries, ceil(qps * min_duration_s))`` arrivals, their exponential
    gaps scaled so that the last one falls at exactly ``n / qps``: a Poisson
    process conditioned on its count, so the schedule asks for exactly the
    target rate. (Unscaled, a short run's realised rate strays from the target
    by about 1/sqrt(n): 30% for a dozen LLM requests; then neither "the server
    kept up" nor "it fell behind" could be read from the achieved rate.)
    """
    rng = random.Random(settings.seed)
    count = max(settings.min_queries, math.ceil(qps * settings.min_duration_s), 1)
    offsets, t = [], 0.0
    for _ in range(count):
        t += rng.expovariate(qps)
        offsets.append(t)
    scale = count / qps / t * 1e9
    return [int(offset * scale) for offset in offsets]


#: A server run whose completed-query rate falls more than this far below its target is invalid.
MAX_RATE_SHORTFALL = 0.05
#: Warn when the harness's own issue lateness (p99) exceeds this share of the median latency.
MAX_LATENESS_SHARE = 0.05


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
    #: Issue lateness of the queries that found the server idle: actual start minus scheduled
    #: arrival, the harness's own wake-up error (queued queries wait for the server instead).
    lateness_ns: list[int] = field(default_factory=list)

    @property
    def achieved_qps(self) -> float | None:
        """Completed queries per second of wall time, from the schedule's start to the last completion."""
        return self.completed / (self.elapsed_ns / 1e9) if self.elapsed_ns else None

    def lateness_summary(self) -> dict[str, Any]:
        ordered = sorted(self.lateness_ns)
        if not ordered:
            return {"count": 0, "p50_s": None, "p99_s": None, "max_s": None}
        return {"count": len(ordered), "p50_s": percentile(ordered, 50) / 1e9,
                "p99_s": percentile(ordered, 99) / 1e9, "max_s": ordered[-1] / 1e9}

    def summary(self) -> dict[str, Any]:
        return {
            "qps": self.qps,
            "achieved_qps": self.achieved_qps,
            "p99_s": self.p99_s,
            "valid": self.valid,
            "reason": self.reason,
            "completed": self.completed,
            "mean_wait_s": (sum(self.waits_ns) / len(self.waits_ns) / 1e9) if self.waits_ns else None,
        }


def run_server_trial(
    prepared: Prepared, qps: float, settings: ServerSettings, timebase: Timebase = HOST
) -> ServerTrial:
    """Serve one Poisson arrival sequence at ``qps`` on a single FIFO server.

    As in LoadGen, a query's latency counts from its *scheduled* arrival, so
    queueing delay and any lateness of the harness itself count against the
    system. The harness keeps its own part small (``Timebase.sleep_until``
    spins the last stretch before each arrival, to a threshold calibrated on
    the host) and records it: ``lateness_ns`` of every query that found the
    server idle.
    """
    offsets = poisson_arrivals_ns(qps, settings)
    step, synchronize, now = prepared.step, prepared.synchronize, timebase.now
    # Early stop: once more than 1% of the planned queries have missed the SLO,
    # p99 cannot meet it, so the run is certainly invalid (this keeps the
    # max-QPS search fast). A server far behind schedule is stopped too.
    slo_ns = settings.latency_slo_s * 1e9
    allowed_violations = math.ceil(0.01 * len(offsets))
    give_up_ns = 2 * offsets[-1] + min(10 * slo_ns, 60e9)
    streamer = capability(prepared, StreamingStep)
    streaming = streamer.step_streaming if streamer is not None else None
    latencies, waits, token_offsets, lateness = [], [], [], []
    failures: dict[str, int] = {}
    violations = 0
    base = now()
    overloaded = stopped_early = False
    for offset in offsets:
        arrival = base + offset
        idle = now() < arrival
        if idle:
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
        if idle:
            lateness.append(started - arrival)
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
    achieved = len(latencies) / (elapsed / 1e9) if elapsed else 0.0
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
    elif achieved < (1 - MAX_RATE_SHORTFALL) * qps:
        valid, reason = False, (
            f"fell behind: {achieved:.4g} queries/s completed, {1 - achieved / qps:.0%} below the target "
            f"{qps:.4g} (more than {MAX_RATE_SHORTFALL:.0%}); {len(latencies)} queries in {elapsed / 1e9:.3g} s"
        )
    else:
        valid, reason = True, (
            f"p99 latency {p99 * 1e3:.4g} ms <= SLO {settings.latency_slo_s * 1e3:.4g} ms "
            f"over {len(latencies)} queries, {scheduled_s:.3g} s; {achieved:.4g} of {qps:.4g} queries/s completed"
        )
    token_bounds = check_token_bounds(token_offsets, settings)
    if token_bounds is not None and not stopped_early and not overloaded:
        bounds_ok, bounds_reason = token_bounds
        valid = valid and bounds_ok
        reason = f"{reason}; {bounds_reason}" if valid or not bounds_ok else reason
    return ServerTrial(qps, latencies, waits, offsets[len(latencies) - 1], elapsed, len(latencies),
                       len(offsets), p99, valid, reason, token_offsets or None, failures, lateness)


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
    warm_up(prepared, stopping.warmup)
    wake_up = timebase.calibrate()  # before any schedule starts: how early to stop sleeping
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
    achieved_qps = chosen.achieved_qps
    lateness = chosen.lateness_summary()
    median_latency_s = percentile(sorted(chosen.latencies_ns), 50) / 1e9
    warnings = []
    if lateness["p99_s"] is not None and lateness["p99_s"] > MAX_LATENESS_SHARE * median_latency_s:
        warnings.append(
            f"issue lateness: the harness started queries up to {lateness['p99_s'] * 1e3:.3g} ms (p99) after their "
            f"scheduled arrival, more than {MAX_LATENESS_SHARE:.0%} of the median latency "
            f"{median_latency_s * 1e3:.3g} ms; latencies count from the schedule, so they include it")
    offsets = chosen.token_offsets_ns or [[] for _ in chosen.latencies_ns]
    good = sum(_meets_slo(latency, marks, server) for latency, marks in zip(chosen.latencies_ns, offsets))
    extra = {
        "target_qps": chosen.qps,
        "achieved_qps": achieved_qps,
        # Queries that met every SLO (latency from arrival; TTFT/TPOT bounds where tokens stream).
        "goodput": {"requests_per_s": good / (chosen.elapsed_ns / 1e9) if chosen.elapsed_ns else None,
                    "fraction": good / len(chosen.latencies_ns) if chosen.latencies_ns else None,
                    "slo": {"e2e_s": server.latency_slo_s, "ttft_s": server.ttft_bound_s,
                            "tpot_s": server.tpot_bound_s}},
        "mean_wait_s": chosen.summary()["mean_wait_s"],
        # The harness's own error: start minus scheduled arrival of queries that found the server idle.
        "issue_lateness": lateness,
        "wake_up": wake_up,
        "latency_slo_s": server.latency_slo_s,
        "seed": server.seed,
        "trials": [t.summary() for t in trials],
    }
    throughput = None
    if achieved_qps:
        throughput = {"value": achieved_qps * work_per_step, "unit": f"{unit}/s", "ci_low": None,
                      "ci_high": None, "basis": "completed queries x work per query / wall time"}
    return ScenarioResult(sampling, metric, valid, reason, throughput, extra, warnings)


# -- concurrent (closed loop) ------------------------------------------------------

@dataclass
class ConcurrentTrial:
    concurrency: int
    latencies_ns: list[int]
    token_offsets_ns: list[list[int]]
    failures: dict[str, int]
    elapsed_ns: int
    valid: bool
    reason: str
    goodput: int  # queries that met every SLO

    def summary(self) -> dict[str, Any]:
        seconds = self.elapsed_ns / 1e9
        return {"concurrency": self.concurrency, "completed": len(self.latencies_ns),
                "requests_per_s": len(self.latencies_ns) / seconds if seconds else None,
                "goodput_requests_per_s": self.goodput / seconds if seconds else None,
                "valid": self.valid, "reason": self.reason}


def _meets_slo(latency_ns: int, marks: list[int], settings: ServerSettings) -> bool:
    if latency_ns > settings.latency_slo_s * 1e9:
        return False
    if marks and settings.ttft_bound_s is not None and marks[0] > settings.ttft_bound_s * 1e9:
        return False
    if len(marks) > 1 and settings.tpot_bound_s is not None:
        if (marks[-1] - marks[0]) / (len(marks) - 1) > settings.tpot_bound_s * 1e9:
            return False
    return True


def run_concurrent_trial(prepared: Prepared, concurrency: int, settings: ServerSettings, stopping: Stopping,
                         timebase: Timebase = HOST) -> ConcurrentTrial:
    """N client threads in a closed loop until the minimums are met or ``max_duration_s`` passes.

    Every request's latency and token marks count from the moment its client
    sent it. Bounded: each client stops at the deadline, and a request itself
    is bounded by the backend's own timeout.
    """
    import threading

    streamer = capability(prepared, StreamingStep)
    streaming = streamer.step_streaming if streamer is not None else None
    now = timebase.now
    lock = threading.Lock()
    latencies: list[int] = []
    offsets: list[list[int]] = []
    failures: dict[str, int] = {}
    start = now()
    deadline = start + stopping.max_duration_s * 1e9
    stop = threading.Event()

    def enough() -> bool:
        return len(latencies) >= settings.min_queries and now() - start >= settings.min_duration_s * 1e9

    def client() -> None:
        while not stop.is_set() and now() < deadline:
            marks: list[int] = []
            sent = now()
            try:
                if streaming is None:
                    prepared.step()
                else:
                    streaming(lambda: marks.append(now() - sent))
                prepared.synchronize()
            except QueryFailed as error:
                with lock:
                    failures[error.cause] = failures.get(error.cause, 0) + 1
                    if sum(failures.values()) >= max(10, 2 * len(latencies) + 1):
                        stop.set()
                continue
            finished = now()
            with lock:
                latencies.append(finished - sent)
                offsets.append(marks)
                if enough():
                    stop.set()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = now() - start
    if not latencies:
        raise RuntimeError(f"every query failed at concurrency {concurrency} "
                           f"({', '.join(f'{k}: {v}' for k, v in failures.items())})")
    good = sum(_meets_slo(latency, marks, settings) for latency, marks in zip(latencies, offsets))
    p99 = percentile(sorted(latencies), 99) / 1e9
    if not enough():
        valid, reason = False, (f"minimums not met in {stopping.max_duration_s:g} s: {len(latencies)} of "
                                f"{settings.min_queries} queries")
    elif p99 > settings.latency_slo_s:
        valid, reason = False, f"p99 latency {p99 * 1e3:.4g} ms > SLO {settings.latency_slo_s * 1e3:.4g} ms"
    else:
        valid, reason = True, (f"p99 latency {p99 * 1e3:.4g} ms <= SLO {settings.latency_slo_s * 1e3:.4g} ms over "
                               f"{len(latencies)} queries at concurrency {concurrency}")
    token_bounds = check_token_bounds([m for m in offsets if m], settings)
    if token_bounds is not None and valid:
        valid, bounds_reason = token_bounds
        reason = f"{reason}; {bounds_reason}"
    return ConcurrentTrial(concurrency, latencies, offsets, failures, elapsed, valid, reason, good)


def run_concurrent(
    prepared: Prepared, stopping: Stopping, timebase: Timebase = HOST, *,
    server: ServerSettings, work_per_step: float, unit: str, **_: Any,
) -> ScenarioResult:
    from harness.errors import Unsupported

    concurrent = capability(prepared, ConcurrentSteps)
    if concurrent is None or not concurrent.concurrent_safe:
        raise Unsupported("the concurrent scenario needs a backend whose queries may overlap (an HTTP endpoint); "
                          "this one runs one query at a time: use server or single-stream")
    warm_up(prepared, stopping.warmup)
    if server.find_max_concurrency:
        trials, best = [], None
        level = 1
        while level <= server.max_concurrency:
            trials.append(run_concurrent_trial(prepared, level, server, stopping, timebase))
            if not trials[-1].valid:
                break
            best, level = trials[-1], level * 2
        chosen = best or trials[-1]
        metric = {"name": "max_valid_concurrency", "value": best.concurrency if best else None, "unit": "clients"}
        valid = best is not None
        reason = (f"highest valid concurrency {best.concurrency} (doubling from 1; next failed: "
                  f"{trials[-1].reason})" if best and not trials[-1].valid else
                  best.reason if best else f"no valid concurrency: even 1 client fails ({trials[0].reason})")
    else:
        chosen = run_concurrent_trial(prepared, server.concurrency, server, stopping, timebase)
        trials = [chosen]
        metric = {"name": "concurrency", "value": server.concurrency, "unit": "clients"}
        valid, reason = chosen.valid, chosen.reason
    seconds = chosen.elapsed_ns / 1e9
    summary = chosen.summary()
    sampling = Sampling(
        latencies_ns=chosen.latencies_ns, host_latencies_ns=None, timer=timebase.name,
        timer_resolution_ns=timebase.resolution_ns, elapsed_ns=chosen.elapsed_ns,
        stop_reason=f"{len(chosen.latencies_ns)} queries from {chosen.concurrency} concurrent clients",
        target_reached=None, achieved_ci=None,
        token_offsets_ns=chosen.token_offsets_ns if any(chosen.token_offsets_ns) else None,
        failures=dict(chosen.failures),
    )
    throughput = {"value": len(chosen.latencies_ns) * work_per_step / seconds, "unit": f"{unit}/s",
                  "ci_low": None, "ci_high": None,
                  "basis": f"completed queries x work per query / wall time, {chosen.concurrency} concurrent clients"}
    extra = {
        "concurrency": chosen.concurrency,
        "requests_per_s": summary["requests_per_s"],
        "goodput": {"requests_per_s": summary["goodput_requests_per_s"],
                    "fraction": chosen.goodput / len(chosen.latencies_ns),
                    "slo": {"e2e_s": server.latency_slo_s, "ttft_s": server.ttft_bound_s, "tpot_s": server.tpot_bound_s}},
        "trials": [t.summary() for t in trials],
    }
    return ScenarioResult(sampling, metric, valid, reason, throughput, extra)


# -- the built-in scenarios, registered under bakeoff.scenarios as any plugin's would be -------------

class SingleStream(Scenario):
    """MLPerf's SingleStream: one query at a time; metric p90 latency."""

    name = SINGLE_STREAM
    description = "One query at a time, the next when the previous completes; metric: p90 latency."

    def run(self, prepared, stopping, timebase, *, settings, server, work_per_step, unit) -> ScenarioResult:
        return run_single_stream(prepared, stopping, timebase)


class Offline(Scenario):
    """MLPerf's Offline: whole batches back to back; metric throughput."""

    name = OFFLINE
    description = "Whole batches back to back; metric: throughput (sweep --batch-size)."
    default_batch_sizes = (1, 8, 32)

    def run(self, prepared, stopping, timebase, *, settings, server, work_per_step, unit) -> ScenarioResult:
        return run_offline(prepared, stopping, timebase, work_per_step=work_per_step, unit=unit)


def _check_slo(server: ServerSettings) -> None:
    from harness.errors import UserError

    if server.latency_slo_s <= 0:
        raise UserError(f"latency_slo {server.latency_slo_s} s must be > 0")


class Server(Scenario):
    """MLPerf's Server: Poisson arrivals at a target QPS into a FIFO queue; p99 within the SLO."""

    name = SERVER
    description = "Poisson arrivals at --qps (or --find-max-qps) into a FIFO queue; valid when p99 meets the SLO."
    uses_server_settings = True
    samples_cover_metered_span = False  # a max-QPS search meters every trial

    def check(self, settings, server: ServerSettings) -> None:
        from harness.errors import UserError

        _check_slo(server)
        if not server.find_max_qps and (server.target_qps is None or server.target_qps <= 0):
            raise UserError("the server scenario needs a target QPS > 0 (--qps) or --find-max-qps")

    def identity(self, settings, server: ServerSettings | None) -> dict[str, Any]:
        if server is None:
            return {}
        return {"server": {"target_qps": None if server.find_max_qps else server.target_qps,
                           "latency_slo_s": server.latency_slo_s, "find_max_qps": server.find_max_qps}}

    def run(self, prepared, stopping, timebase, *, settings, server, work_per_step, unit) -> ScenarioResult:
        return run_server(prepared, stopping, timebase, server=server, work_per_step=work_per_step, unit=unit)


class Concurrent(Scenario):
    """A closed loop of N clients (serving benchmarks' fixed concurrency), for overlapping backends."""

    name = CONCURRENT
    description = "A closed loop of --concurrency clients (endpoints); metrics: throughput, requests/s, goodput."
    uses_server_settings = True
    samples_cover_metered_span = False  # a max-concurrency search meters every trial

    def check(self, settings, server: ServerSettings) -> None:
        from harness.errors import UserError

        _check_slo(server)
        if not 1 <= server.concurrency <= server.max_concurrency:
            raise UserError(f"concurrency {server.concurrency} must be between 1 and {server.max_concurrency}")

    def identity(self, settings, server: ServerSettings | None) -> dict[str, Any]:
        if server is None:
            return {}
        return {"load": {"concurrency": None if server.find_max_concurrency else server.concurrency,
                         "find_max_concurrency": server.find_max_concurrency,
                         "latency_slo_s": server.latency_slo_s, "ttft_bound_s": server.ttft_bound_s,
                         "tpot_bound_s": server.tpot_bound_s}}

    def run(self, prepared, stopping, timebase, *, settings, server, work_per_step, unit) -> ScenarioResult:
        return run_concurrent(prepared, stopping, timebase, server=server, work_per_step=work_per_step, unit=unit)
