"""The run loop, timed with injected fake clocks: deterministic, no wall time."""

from __future__ import annotations

import itertools

import pytest

from harness.interface import Prepared
from harness.plugins import Registry
from harness.runner import FAILED, OK, UNAVAILABLE, UNSUPPORTED, execute, measure
from harness.spec import BenchmarkSpec


class ScriptedClock:
    """A clock that a fake device advances: each step costs a scripted number of ns."""

    def __init__(self, start: int = 1_000_000) -> None:
        self.now = start
        self.reads = 0

    def __call__(self) -> int:
        self.reads += 1
        return self.now


class ScriptedPrepared(Prepared):
    def __init__(self, clock: ScriptedClock, costs, sync_cost: int = 0) -> None:
        super().__init__()
        self.clock, self.costs, self.sync_cost = clock, iter(costs), sync_cost
        self.calls: list[str] = []

    def step(self) -> None:
        self.calls.append("step")
        self.clock.now += next(self.costs)

    def synchronize(self) -> None:
        self.calls.append("sync")
        self.clock.now += self.sync_cost


def test_measure_records_each_timed_step_and_skips_warmup():
    clock = ScriptedClock()
    # 2 warm-up steps cost 1 ms each, then timed steps cost 10, 20, 30 us
    prepared = ScriptedPrepared(clock, [1_000_000, 1_000_000, 10_000, 20_000, 30_000], sync_cost=5)
    m = measure(prepared, warmup=2, iterations=3, clock=clock, timer_name="fake", timer_resolution_ns=1)
    assert m.latencies_ns == (10_005, 20_005, 30_005)  # synchronize is inside the timed region
    assert m.warmup == 2 and m.timer == "fake"
    assert prepared.calls == ["step", "sync"] * 5
    assert clock.reads == 6  # two reads per timed iteration, none during warm-up


def test_measure_rejects_zero_iterations():
    clock = ScriptedClock()
    with pytest.raises(ValueError):
        measure(ScriptedPrepared(clock, []), warmup=0, iterations=0, clock=clock)


def test_fixed_step_clock_gives_exact_statistics(test_plugins):
    """A clock that advances exactly 1 ms per read: every sample is exactly 1 ms."""
    ticks = itertools.count(0, 1_000_000)
    spec = BenchmarkSpec.create(backend="null", device="fake", workload="noop", iterations=20, warmup=3)
    outcome = execute(spec, Registry(), clock=lambda: next(ticks))
    assert outcome.status == OK
    assert outcome.measurement.latencies_ns == (1_000_000,) * 20
    assert outcome.unit == "op" and outcome.work_per_step == 1.0
    assert outcome.prepare_s == pytest.approx(0.001)  # one tick around prepare


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
