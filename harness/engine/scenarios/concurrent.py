"""The concurrent scenario: a closed loop of N clients, for backends whose queries may overlap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.contract.capabilities import ConcurrentSteps, StreamingStep, capability
from harness.contract.interface import Prepared
from harness.engine.scenarios.base import ScenarioResult, ServerSettings
from harness.engine.scenarios.server import check_token_bounds, meets_slo
from harness.analysis.stats import percentile
from harness.engine.timing import HOST, QueryFailed, Sampling, Stopping, Timebase, TokenMarks, streamed

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
            marks = TokenMarks()
            sent = now()
            try:
                if streaming is None:
                    prepared.step()
                else:
                    streamed(streaming, lambda: marks.append(now() - sent), marks)
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
    good = sum(meets_slo(latency, marks, settings) for latency, marks in zip(latencies, offsets))
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
    from harness.contract.errors import Unsupported

    concurrent = capability(prepared, ConcurrentSteps)
    if concurrent is None or not concurrent.concurrent_safe:
        raise Unsupported("the concurrent scenario needs a backend whose queries may overlap (an HTTP endpoint); "
                          "this one runs one query at a time: use server or single-stream")
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
