"""execute(): one benchmark to an Outcome, whatever happens. Fake time, real plugins."""

from __future__ import annotations

import pytest

from fakes import FakeTimebase
from harness.engine.plugins import Registry
from harness.engine.runner import FAILED, OK, UNAVAILABLE, UNSUPPORTED, execute, failure_cause
from harness.engine.scenarios import ServerSettings
from harness.engine.spec import BenchmarkSpec
from harness.engine.timing import Stopping


class SteppingTimebase(FakeTimebase):
    """Advances exactly 1 ms per read, like pyperf's fake perf_counter."""

    def now(self) -> int:
        self.t += 1_000_000
        return self.t


def test_fixed_step_clock_gives_exact_statistics(test_plugins):
    spec = BenchmarkSpec.create(backend="null", device="fake", workload="noop", iterations=20, warmup=3)
    outcome = execute(spec, Registry(), timebase=SteppingTimebase())
    assert outcome.status == OK
    assert outcome.measurement.latencies_ns == (1_000_000,) * 20
    assert outcome.measurement.timer == "fake-clock"
    assert outcome.measurement.harness_overhead_ns == 1_000_000
    assert outcome.unit == "op" and outcome.work_per_step == 1.0
    assert outcome.prepare_s == pytest.approx(0.001)
    assert outcome.stopping["mode"] == "fixed"
    assert outcome.scenario == {"name": "single-stream", "metric": {"name": "p90_latency", "value": 0.001,
                                                                    "unit": "s"},
                                "valid": True, "validity_reason": outcome.scenario["validity_reason"]}


def test_adaptive_outcome_records_whether_the_target_was_reached(test_plugins):
    spec = BenchmarkSpec.create(backend="null", device="fake", workload="noop",
                                stopping=Stopping(warmup=0, min_iterations=10, min_duration_s=0.02))
    outcome = execute(spec, Registry(), timebase=SteppingTimebase())
    assert outcome.stopping["mode"] == "adaptive"
    assert outcome.stopping["target_reached"] is True and outcome.stopping["achieved_ci"] == 0
    assert "<= target 2.00%" in outcome.stopping["reason"]


def test_server_scenario_through_execute(test_plugins):
    spec = BenchmarkSpec.create(backend="null", device="fake", workload="noop", scenario="server",
                                server=ServerSettings(target_qps=100, min_queries=50, min_duration_s=0,
                                                      latency_slo_s=0.01))
    outcome = execute(spec, Registry(), timebase=SteppingTimebase())
    assert outcome.status == OK
    assert outcome.scenario["name"] == "server" and outcome.scenario["target_qps"] == 100
    assert len(outcome.measurement.latencies_ns) == 50


def test_execute_turns_exceptions_into_failed_outcomes(test_plugins):
    spec = BenchmarkSpec.create(backend="raising", device="fake", workload="noop", iterations=3)
    outcome = execute(spec, Registry())
    assert outcome.status == FAILED
    assert outcome.failure["cause"] == "error"
    assert "RuntimeError: device lost" in outcome.failure["message"]
    assert "Traceback" in outcome.failure["traceback"]


def test_execute_reports_unsupported_and_unavailable(test_plugins):
    refused = execute(
        BenchmarkSpec.create(backend="refusing", device="fake", workload="noop", dtype="bfloat16"),
        Registry(),
    )
    assert refused.status == UNSUPPORTED and "cannot run bfloat16" in refused.reason
    assert refused.measurement is None

    absent = execute(BenchmarkSpec.create(backend="absent", device="fake", workload="noop"), Registry())
    assert absent.status == UNAVAILABLE and "no Fake accelerator" in absent.reason

    no_device = execute(BenchmarkSpec.create(backend="null", device="gpu:7", workload="noop"), Registry())
    assert no_device.status == UNAVAILABLE and "gpu:7" in no_device.reason


@pytest.mark.parametrize("exc, cause", [
    (MemoryError(), "out-of-memory"),
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "out-of-memory"),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes"), "out-of-memory"),
    (RuntimeError("device lost"), "error"),
])
def test_failure_cause_recognises_allocation_failures(exc, cause):
    assert failure_cause(exc) == cause


def test_spec_round_trips_and_key_ignores_loop_settings():
    spec = BenchmarkSpec.create(backend="torch", device="cuda:0", workload="gemm", params={"size": 64},
                                dtype="float16", batch_size=4, iterations=10)
    assert BenchmarkSpec.from_dict(spec.to_dict()) == spec
    longer = BenchmarkSpec.create(backend="torch", device="cuda:0", workload="gemm", params={"size": 64},
                                  dtype="float16", batch_size=4, iterations=99)
    assert spec.key() == longer.key()
    assert "/" not in spec.key() and ":" not in spec.key()
    other = BenchmarkSpec.create(backend="torch", device="cuda:0", workload="gemm", params={"size": 65},
                                 dtype="float16", batch_size=4)
    assert other.key() != spec.key()
    server = BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm", scenario="server",
                                  server=ServerSettings(target_qps=10))
    assert BenchmarkSpec.from_dict(server.to_dict()) == server
    faster = BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm", scenario="server",
                                  server=ServerSettings(target_qps=20))
    assert server.key() != faster.key()
