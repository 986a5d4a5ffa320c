"""MLPerf's Server scenario: Poisson arrivals into a FIFO queue, latency from the scheduled arrival, max-QPS search."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable

from harness.contract.capabilities import ConcurrentSteps, StreamingStep, capability
from harness.contract.interface import Prepared
from harness.engine.scenarios.base import ScenarioResult, ServerSettings
from harness.analysis.stats import percentile
from harness.analysis.tokens import time_per_output_token
from harness.engine.timing import HOST, QueryFailed, Sampling, Stopping, Timebase, TokenMarks, streamed

# -- server ------------------------------------------------------------------------


def arrivals_ns(qps: float, settings: ServerSettings) -> list[int]:
    """Arrival offsets (ns from the start) of the seeded arrival process at ``qps``.

    ``max(min_queries, ceil(qps * min_duration_s))`` arrivals. Gaps are exponential
    (``poisson``), gamma with shape ``burstiness`` and mean ``1 / qps`` (``gamma``; shape 1
    is Poisson, below 1 burstier: vllm bench's ``--burstiness``), or exactly ``1 / qps``
    (``constant``). Random gaps are scaled so that the last arrival falls at exactly
    ``n / qps``: the process conditioned on its count, so the schedule asks for exactly the
    target rate. (Unscaled, a short run's realised rate strays from the target by about
    1/sqrt(n): 30% for a dozen LLM requests; then neither "the server kept up" nor "it fell
    behind" could be read from the achieved rate.)

    With ``ramp_up_s``, time is warped so that the expected rate rises linearly from zero
    to ``qps`` over that span, then holds: an arrival due at ``s`` in the stationary schedule
    comes at ``sqrt(2 R s)`` while ``s < R / 2``, else at ``s + R / 2``.
    """
    if settings.arrival == "trace":  # replayed as recorded: the trace's own count and rate
        from harness.engine.mix import read_arrivals

        offsets = read_arrivals(settings.arrival_trace)
        start = offsets[0] - (offsets[1] - offsets[0] if len(offsets) > 1 else 0.0)
        return [int((offset - start) * 1e9) for offset in offsets]
    rng = random.Random(settings.seed)
    ramp = settings.ramp_up_s
    # The minimums hold for the steady part: a ramp adds the arrivals it takes (qps x R / 2).
    count = max(settings.min_queries, math.ceil(qps * settings.min_duration_s), 1) + math.ceil(qps * ramp / 2)
    if settings.arrival == "constant":
        offsets = [(i + 1) / qps for i in range(count)]
    else:
        draw = ((lambda: rng.gammavariate(settings.burstiness, 1.0 / (qps * settings.burstiness)))
                if settings.arrival == "gamma" else (lambda: rng.expovariate(qps)))
        raw, t = [], 0.0
        for _ in range(count):  # accumulated, then scaled: the arithmetic Poisson schedules always had
            t += draw()
            raw.append(t)
        if ramp <= 0:  # exactly the old arithmetic, so a seed gives the schedule it always gave
            scale_ns = count / qps / t * 1e9
            return [int(offset * scale_ns) for offset in raw]
        scale = count / qps / t
        offsets = [offset * scale for offset in raw]
    if ramp > 0:
        offsets = [math.sqrt(2 * ramp * s) if s < ramp / 2 else s + ramp / 2 for s in offsets]
    return [int(offset * 1e9) for offset in offsets]


def describe_arrivals(settings: ServerSettings) -> str:
    """``Poisson``, ``gamma (burstiness 0.5)``, ``constant-rate``; with `` and a 10 s ramp-up``."""
    kind = {"poisson": "Poisson", "constant": "constant-rate",
            "trace": f"replayed from {settings.arrival_trace}"}.get(settings.arrival,
                                                                   f"gamma (burstiness {settings.burstiness:g})")
    return kind + (f" and a {settings.ramp_up_s:g} s ramp-up" if settings.ramp_up_s > 0 else "")


def poisson_arrivals_ns(qps: float, settings: ServerSettings) -> list[int]:
    """The arrival schedule of :func:`arrivals_ns` (its historical name: Poisson is the default)."""
    return arrivals_ns(qps, settings)


def scheduled_rate(offsets_ns: list[int]) -> float:
    """Arrivals per second between the first and the last arrival of a schedule."""
    if len(offsets_ns) < 2 or offsets_ns[-1] <= offsets_ns[0]:
        return len(offsets_ns) / (offsets_ns[-1] / 1e9) if offsets_ns and offsets_ns[-1] else 0.0
    return (len(offsets_ns) - 1) / ((offsets_ns[-1] - offsets_ns[0]) / 1e9)


#: A server run whose completed-query rate falls more than this far below its target is invalid.
MAX_RATE_SHORTFALL = 0.05
#: Warn when the harness's own issue lateness (p99) exceeds this share of the median latency.
MAX_LATENESS_SHARE = 0.05


def achieved_rate(completed_at_ns: list[int], completed: int, elapsed_ns: int) -> float | None:
    """Queries per second between the first completion and the last (:attr:`ServerTrial.achieved_qps`);
    over the whole elapsed time where fewer than two completion times are known."""
    done = sorted(completed_at_ns)
    if len(done) >= 2 and done[-1] > done[0]:
        return (len(done) - 1) / ((done[-1] - done[0]) / 1e9)
    return completed / (elapsed_ns / 1e9) if elapsed_ns else None


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
    #: Open-loop dispatch: the most queries in flight at once, and the time-weighted mean.
    peak_in_flight: int | None = None
    mean_in_flight: float | None = None

    #: When each query completed, ns from the schedule's start, in completion order.
    completed_at_ns: list[int] = field(default_factory=list)

    @property
    def achieved_qps(self) -> float | None:
        """Completed queries per second between the first completion and the last.

        Counted from the schedule's start instead, a short run would be charged one latency
        of its own: 60 queries at 6.7/s on vLLM, keeping up, read 5% below target because the
        last reply took half a second. Between completions a server that keeps up completes
        at the arrival rate, and one that falls behind spreads them out."""
        return achieved_rate(self.completed_at_ns, self.completed, self.elapsed_ns)

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
            **({"peak_in_flight": self.peak_in_flight, "mean_in_flight": self.mean_in_flight}
               if self.peak_in_flight is not None else {}),
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
    offsets = arrivals_ns(qps, settings)
    step, synchronize, now = prepared.step, prepared.synchronize, timebase.now
    # Early stop: once more than 1% of the planned queries have missed the SLO,
    # p99 cannot meet it, so the run is certainly invalid (this keeps the
    # max-QPS search fast). A server far behind schedule is stopped too.
    slo_ns = settings.latency_slo_s * 1e9
    allowed_violations = math.ceil(0.01 * len(offsets))
    give_up_ns = 2 * offsets[-1] + min(10 * slo_ns, 60e9)
    streamer = capability(prepared, StreamingStep)
    streaming = streamer.step_streaming if streamer is not None else None
    latencies, waits, token_offsets, lateness, completed_at = [], [], [], [], []
    failures: dict[str, int] = {}
    violations = 0
    spin = settings.wake_up == "spin"
    base = now()
    overloaded = stopped_early = False
    for offset in offsets:
        arrival = base + offset
        idle = now() < arrival
        if idle:
            timebase.sleep_until(arrival, spin=spin)
        if streaming is not None:  # token-streaming workloads: timestamp every token, from the arrival
            marks = TokenMarks()

            def mark(marks=marks, arrival=arrival) -> None:
                synchronize()
                marks.append(now() - arrival)
        started = now()
        try:
            if streaming is None:
                step()
            else:
                streamed(streaming, mark, marks)
            synchronize()
        except QueryFailed as error:
            failures[error.cause] = failures.get(error.cause, 0) + 1
            continue
        if streaming is not None:
            token_offsets.append(marks)
        finished = now()
        completed_at.append(finished - base)
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
    return _judged(qps, settings, offsets, latencies, waits, token_offsets, failures, lateness, completed_at,
                   elapsed, violations, stopped_early, overloaded)


def _judged(qps: float, settings: ServerSettings, offsets: list[int], latencies: list[int], waits: list[int],
            token_offsets: list, failures: dict[str, int], lateness: list[int], completed_at: list[int],
            elapsed: int, violations: int, stopped_early: bool, overloaded: bool, **in_flight: Any) -> ServerTrial:
    """A trial's verdict, the same for the FIFO server and open-loop dispatch: the SLO, the
    minimums, the achieved rate against the target, and the TTFT/TPOT bounds."""
    if not latencies:
        raise RuntimeError(f"every query failed ({', '.join(f'{k}: {v}' for k, v in failures.items())})")
    p99 = percentile(sorted(latencies), 99) / 1e9
    scheduled_s = offsets[len(latencies) - 1] / 1e9
    achieved = achieved_rate(completed_at, len(latencies), elapsed) or 0.0
    # A ramp asks for less than the target while it rises, and a trace asks for its own rate: the
    # schedule's own mean rate is the bar.
    target = scheduled_rate(offsets) if settings.ramp_up_s > 0 or settings.arrival == "trace" else qps
    ramped = f" (the mean of a {settings.ramp_up_s:g} s ramp to {qps:.4g})" if settings.ramp_up_s > 0 else ""
    if stopped_early:
        valid, reason = False, (
            f"p99 latency above SLO {settings.latency_slo_s * 1e3:.4g} ms: {violations} of "
            f"{len(offsets)} queries missed it (more than 1%); stopped early"
        )
    elif overloaded:
        valid, reason = False, f"overloaded: {len(latencies)} of {len(offsets)} queries done in {elapsed / 1e9:.3g} s"
    elif p99 > settings.latency_slo_s:
        valid, reason = False, f"p99 latency {p99 * 1e3:.4g} ms > SLO {settings.latency_slo_s * 1e3:.4g} ms"
    elif settings.arrival != "trace" and (scheduled_s < settings.min_duration_s
                                          or len(latencies) < settings.min_queries):
        valid, reason = False, "minimum duration or query count not met"  # a trace's own count and span are the run
    elif achieved < (1 - MAX_RATE_SHORTFALL) * target:
        valid, reason = False, (
            f"fell behind: {achieved:.4g} queries/s completed, {1 - achieved / target:.0%} below the target "
            f"{target:.4g}{ramped} (more than {MAX_RATE_SHORTFALL:.0%}); {len(latencies)} queries in "
            f"{elapsed / 1e9:.3g} s"
        )
    else:
        valid, reason = True, (
            f"p99 latency {p99 * 1e3:.4g} ms <= SLO {settings.latency_slo_s * 1e3:.4g} ms "
            f"over {len(latencies)} queries, {scheduled_s:.3g} s; {achieved:.4g} of {target:.4g}{ramped} queries/s "
            "completed"
        )
    token_bounds = check_token_bounds(token_offsets, settings)
    if token_bounds is not None and not stopped_early and not overloaded:
        bounds_ok, bounds_reason = token_bounds
        valid = valid and bounds_ok
        reason = f"{reason}; {bounds_reason}" if valid or not bounds_ok else reason
    return ServerTrial(qps, latencies, waits, offsets[len(latencies) - 1], elapsed, len(latencies),
                       len(offsets), p99, valid, reason, token_offsets or None, failures, lateness,
                       completed_at_ns=completed_at, **in_flight)


def run_open_loop_trial(
    prepared: Prepared, qps: float, settings: ServerSettings, timebase: Timebase = HOST
) -> ServerTrial:
    """Poisson arrivals sent the moment they are due, never waiting for earlier queries: the
    load a serving engine sees from many users, and the only one it can batch.

    For backends whose queries may overlap (``ConcurrentSteps``: an endpoint). Each query
    runs on its own client thread (at most ``max_concurrency`` in flight; beyond that a query
    waits for a thread, and the wait counts against it, as any queueing does). Latency and
    token marks count from the scheduled arrival, as LoadGen's; ``lateness_ns`` is every
    query's actual send minus its arrival; ``peak_in_flight`` and ``mean_in_flight`` say how
    much overlap the server was offered. The dispatcher spins to an arrival only while nothing
    is in flight, so it never competes with a client thread reading its stream.
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor

    offsets = arrivals_ns(qps, settings)
    synchronize, now = prepared.synchronize, timebase.now
    streamer = capability(prepared, StreamingStep)
    streaming = streamer.step_streaming if streamer is not None else None
    slo_ns = settings.latency_slo_s * 1e9
    allowed_violations = math.ceil(0.01 * len(offsets))
    give_up_ns = 2 * offsets[-1] + min(10 * slo_ns, 60e9)
    lock = threading.Lock()
    latencies, waits, token_offsets, lateness, completed_at, failures = [], [], [], [], [], {}
    state = {"in_flight": 0, "peak": 0, "area": 0, "since": 0, "violations": 0}
    stop = threading.Event()

    def flight(change: int, at: int) -> None:  # under the lock: time-weighted in-flight count
        state["area"] += state["in_flight"] * (at - state["since"])
        state["in_flight"] += change
        state["since"] = at
        state["peak"] = max(state["peak"], state["in_flight"])

    def query(arrival: int) -> None:
        marks = TokenMarks()
        started = now()
        with lock:
            flight(+1, started)
        try:
            if streaming is None:
                prepared.step()
            else:
                streamed(streaming, lambda: marks.append(now() - arrival), marks)
            synchronize()
        except QueryFailed as error:
            with lock:
                failures[error.cause] = failures.get(error.cause, 0) + 1
                flight(-1, now())
            return
        finished = now()
        with lock:
            flight(-1, finished)
            completed_at.append(finished - base)
            latencies.append(finished - arrival)
            waits.append(started - arrival)
            lateness.append(started - arrival)
            if streaming is not None:
                token_offsets.append(marks)
            state["violations"] += finished - arrival > slo_ns
            if state["violations"] > allowed_violations or finished - base > give_up_ns:
                stop.set()

    spin = settings.wake_up == "spin"
    base = now()
    state["since"] = base
    with ThreadPoolExecutor(max_workers=settings.max_concurrency, thread_name_prefix="bakeoff-client") as pool:
        for offset in offsets:
            if stop.is_set():
                break
            arrival = base + offset
            if now() < arrival:
                # No spin while queries are in flight: it would hold the interpreter their client
                # threads need to read chunks. The later wake-up is recorded as lateness.
                timebase.sleep_until(arrival, spin=spin and state["in_flight"] == 0)
            pool.submit(query, arrival)
    elapsed = now() - base
    with lock:
        flight(0, base + elapsed)
    stopped_early = state["violations"] > allowed_violations
    return _judged(qps, settings, offsets, latencies, waits, token_offsets, failures, lateness, completed_at,
                   elapsed, state["violations"], stopped_early, not stopped_early and elapsed > give_up_ns,
                   peak_in_flight=state["peak"], mean_in_flight=state["area"] / elapsed if elapsed else None)


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
        "TPOT": sorted(tpot for marks in token_offsets
                       if (tpot := time_per_output_token(marks, marks.tokens)) is not None),
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


def meets_slo(latency_ns: int, marks: list[int], settings: ServerSettings) -> bool:
    """Whether one query met every SLO: latency from arrival, and the TTFT/TPOT bounds where tokens stream."""
    if latency_ns > settings.latency_slo_s * 1e9:
        return False
    if marks and settings.ttft_bound_s is not None and marks[0] > settings.ttft_bound_s * 1e9:
        return False
    tpot = time_per_output_token(marks, marks.tokens) if marks else None
    if tpot is not None and settings.tpot_bound_s is not None and tpot > settings.tpot_bound_s * 1e9:
        return False
    return True


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
    # Before any schedule starts: how early to stop sleeping (a sleep-only wake-up never spins).
    wake_up = ({"policy": "spin", **timebase.calibrate()} if server.wake_up == "spin" else
               {"policy": "sleep", "basis": "sleep until each arrival, never spin (MLPerf LoadGen's issue thread)"})
    # Queries that may overlap (an endpoint) are sent when due; a local runtime serves one at a time.
    open_loop = capability(prepared, ConcurrentSteps) is not None
    trial = run_open_loop_trial if open_loop else run_server_trial
    if server.find_max_qps:
        best, trials = find_max_qps(prepared, server, timebase, trial)
        chosen = best or trials[-1]
        metric = {"name": "max_valid_qps", "value": best.qps if best else None, "unit": "queries/s"}
        valid = best is not None
        reason = (f"highest valid QPS {best.qps:.4g} within {server.search_tolerance:.0%}"
                  if best else f"no valid QPS: even {trials[0].qps:.4g} QPS fails ({trials[0].reason})")
    else:
        qps = scheduled_rate(arrivals_ns(0.0, server)) if server.arrival == "trace" else server.target_qps
        chosen = trial(prepared, qps, server, timebase)
        trials = [chosen]
        metric = {"name": "qps", "value": qps, "unit": "queries/s"}
        valid, reason = chosen.valid, chosen.reason
    sampling = Sampling(
        latencies_ns=chosen.latencies_ns, host_latencies_ns=None, timer=timebase.name,
        timer_resolution_ns=timebase.resolution_ns, elapsed_ns=chosen.elapsed_ns,
        stop_reason=f"{chosen.completed} arrivals ({describe_arrivals(server)}) at {chosen.qps:.4g} QPS served",
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
    good = sum(meets_slo(latency, marks, server) for latency, marks in zip(chosen.latencies_ns, offsets))
    extra = {
        "target_qps": chosen.qps,
        "arrivals": describe_arrivals(server),
        "achieved_qps": achieved_qps,
        # Queries that met every SLO (latency from arrival; TTFT/TPOT bounds where tokens stream).
        "goodput": {"requests_per_s": good / (chosen.elapsed_ns / 1e9) if chosen.elapsed_ns else None,
                    "fraction": good / len(chosen.latencies_ns) if chosen.latencies_ns else None,
                    "slo": {"e2e_s": server.latency_slo_s, "ttft_s": server.ttft_bound_s,
                            "tpot_s": server.tpot_bound_s}},
        "mean_wait_s": chosen.summary()["mean_wait_s"],
        "dispatch": ("open loop: each query sent at its arrival, overlapping earlier ones" if open_loop
                     else "one FIFO server: a query starts when the previous one has finished"),
        **({"peak_in_flight": chosen.peak_in_flight, "mean_in_flight": chosen.mean_in_flight} if open_loop else {}),
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
