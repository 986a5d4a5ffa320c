"""The built-in scenarios as plugins: each registers under ``bakeoff.scenarios`` as a third party's would."""

from __future__ import annotations

from typing import Any

from harness.contract.interface import Scenario
from harness.engine.scenarios.base import (ARRIVALS, CONCURRENT, OFFLINE, SERVER, SINGLE_STREAM, WAKE_UPS, ScenarioResult,
                                    ServerSettings, run_offline, run_single_stream)
from harness.engine.scenarios.concurrent import run_concurrent
from harness.engine.scenarios.server import run_server

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
    from harness.contract.errors import UserError

    if server.latency_slo_s <= 0:
        raise UserError(f"latency_slo {server.latency_slo_s} s must be > 0")


class Server(Scenario):
    """MLPerf's Server: Poisson arrivals at a target QPS into a FIFO queue; p99 within the SLO."""

    name = SERVER
    description = "Poisson arrivals at --qps (or --find-max-qps) into a FIFO queue; valid when p99 meets the SLO."
    uses_server_settings = True
    samples_cover_metered_span = False  # a max-QPS search meters every trial

    def check(self, settings, server: ServerSettings) -> None:
        from harness.contract.errors import UserError

        _check_slo(server)
        if server.arrival == "trace":
            if not server.arrival_trace:
                raise UserError("arrival trace: give the file with --arrival-trace FILE (a CSV or JSONL with arrival_s)")
            if server.find_max_qps or server.ramp_up_s:
                raise UserError("arrival trace replays the trace's own times: drop --find-max-qps and --ramp-up")
            from harness.engine.mix import read_arrivals

            try:
                read_arrivals(server.arrival_trace)
            except ValueError as exc:
                raise UserError(str(exc)) from None
        elif server.arrival_trace:
            raise UserError(f"--arrival-trace {server.arrival_trace}: it is replayed only with --arrival trace")
        elif not server.find_max_qps and (server.target_qps is None or server.target_qps <= 0):
            raise UserError("the server scenario needs a target QPS > 0 (--qps) or --find-max-qps")
        if server.arrival not in ARRIVALS:
            raise UserError(f"arrival {server.arrival!r}: allowed {', '.join(ARRIVALS)}")
        if not server.burstiness > 0:
            raise UserError(f"burstiness {server.burstiness} must be > 0 (1 is Poisson, below 1 burstier)")
        if server.arrival != "gamma" and server.burstiness != 1.0:
            raise UserError(f"burstiness {server.burstiness} shapes gamma arrivals; add --arrival gamma")
        if not server.ramp_up_s >= 0:
            raise UserError(f"ramp_up_s {server.ramp_up_s} must be >= 0")
        if server.wake_up not in WAKE_UPS:
            raise UserError(f"wake_up {server.wake_up!r}: allowed {', '.join(WAKE_UPS)}")

    def identity(self, settings, server: ServerSettings | None) -> dict[str, Any]:
        if server is None:
            return {}
        # The arrival process joins the identity only where it is not the default Poisson, so the
        # keys of benchmarks recorded before it could be chosen stay what they were.
        arrival = {name: getattr(server, name) for name, default in
                   (("arrival", "poisson"), ("burstiness", 1.0), ("ramp_up_s", 0.0), ("arrival_trace", None),
                    ("wake_up", "spin"))
                   if getattr(server, name) != default}
        replayed = server.arrival == "trace"
        return {"server": {"target_qps": None if server.find_max_qps or replayed else server.target_qps,
                           "latency_slo_s": server.latency_slo_s, "find_max_qps": server.find_max_qps, **arrival}}

    def run(self, prepared, stopping, timebase, *, settings, server, work_per_step, unit) -> ScenarioResult:
        return run_server(prepared, stopping, timebase, server=server, work_per_step=work_per_step, unit=unit)


class Concurrent(Scenario):
    """A closed loop of N clients (serving benchmarks' fixed concurrency), for overlapping backends."""

    name = CONCURRENT
    description = "A closed loop of --concurrency clients (endpoints); metrics: throughput, requests/s, goodput."
    uses_server_settings = True
    samples_cover_metered_span = False  # a max-concurrency search meters every trial

    def check(self, settings, server: ServerSettings) -> None:
        from harness.contract.errors import UserError

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
