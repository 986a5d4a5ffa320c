"""MLPerf-style scenarios, checked against queueing theory on a fake fixed-service device."""

from __future__ import annotations

import math

import pytest

from fakes import FakeDevice, FakeStreamingDevice, FakeTimebase, constant
from harness.engine.scenarios import (
    ServerSettings,
    find_max_qps,
    poisson_arrivals_ns,
    run_offline,
    run_server,
    run_server_trial,
    run_single_stream,
)
from harness.engine.timing import Stopping

MS = 1_000_000
SERVICE_S = 0.001  # the fake device's fixed service time: an M/D/1 queue


def md1_wait_cdf(t: float, arrival_rate: float, service: float) -> float:
    """P(W <= t) for the M/D/1 queue, Erlang's formula:
    (1 - rho) * sum_{k=0}^{floor(t/D)} (lambda (kD - t))^k / k! * exp(-lambda (kD - t))."""
    rho = arrival_rate * service
    total = 0.0
    for k in range(int(math.floor(t / service)) + 1):
        x = arrival_rate * (k * service - t)
        total += x**k / math.factorial(k) * math.exp(-x)
    return (1 - rho) * total


def analytic_max_qps(slo_s: float, service: float, quantile: float = 0.99) -> float:
    """Largest arrival rate whose sojourn time (wait + service) meets the SLO at the quantile."""
    low, high = 1e-6, (1 - 1e-9) / service
    for _ in range(200):
        middle = (low + high) / 2
        if md1_wait_cdf(slo_s - service, middle, service) >= quantile:
            low = middle
        else:
            high = middle
    return low


def test_erlang_formula_agrees_with_pollaczek_khinchine_mean():
    """Sanity check of the analytic reference itself: integrate P(W > t) for the mean wait."""
    rate, dt = 500.0, 1e-6
    mean = sum((1 - md1_wait_cdf(i * dt, rate, SERVICE_S)) * dt for i in range(20_000))
    assert mean == pytest.approx(0.5 * SERVICE_S / (2 * 0.5), rel=0.01)


def test_poisson_arrivals_are_seeded_and_have_the_target_rate():
    settings = ServerSettings(target_qps=200, min_queries=20_000, min_duration_s=0, seed=5)
    first, again = poisson_arrivals_ns(200, settings), poisson_arrivals_ns(200, settings)
    assert first == again
    assert len(first) == 20_000
    assert len(first) / (first[-1] / 1e9) == pytest.approx(200, rel=0.03)
    other_seed = poisson_arrivals_ns(200, ServerSettings(min_queries=20_000, min_duration_s=0, seed=6))
    assert other_seed != first


def test_arrivals_cover_the_minimum_duration():
    offsets = poisson_arrivals_ns(10, ServerSettings(min_queries=5, min_duration_s=30))
    assert offsets[-1] >= 30e9


def test_server_mean_wait_matches_pollaczek_khinchine_at_half_load():
    clock = FakeTimebase()
    rho = 0.5
    settings = ServerSettings(target_qps=rho / SERVICE_S, latency_slo_s=1.0, min_queries=20_000,
                              min_duration_s=0)
    trial = run_server_trial(FakeDevice(clock, constant(int(SERVICE_S * 1e9))), settings.target_qps, settings, clock)
    pk_mean_wait = rho * SERVICE_S / (2 * (1 - rho))  # M/D/1: rho / (2 mu (1 - rho))
    measured = sum(trial.waits_ns) / len(trial.waits_ns) / 1e9
    assert measured == pytest.approx(pk_mean_wait, rel=0.15)
    # latency counts from arrival: wait plus the fixed service time
    assert all(lat - wait == SERVICE_S * 1e9 for lat, wait in zip(trial.latencies_ns, trial.waits_ns))
    assert trial.valid


def test_server_validity_follows_the_slo():
    clock = FakeTimebase()
    device = FakeDevice(clock, constant(int(SERVICE_S * 1e9)))
    tight = ServerSettings(target_qps=900, latency_slo_s=0.002, min_queries=2000, min_duration_s=0)
    trial = run_server_trial(device, 900, tight, clock)
    assert not trial.valid and "p99 latency above SLO 2 ms" in trial.reason


def test_overloaded_server_stops_early_once_the_slo_is_certainly_missed():
    clock = FakeTimebase()
    settings = ServerSettings(target_qps=2000, latency_slo_s=0.01, min_queries=5000, min_duration_s=0)
    trial = run_server_trial(FakeDevice(clock, constant(int(SERVICE_S * 1e9))), 2000, settings, clock)
    assert not trial.valid and trial.reason.endswith("stopped early")
    assert "51 of 5000 queries missed it" in trial.reason
    assert trial.completed < trial.planned


def test_a_stalled_server_is_given_up_as_overloaded():
    clock = FakeTimebase()
    settings = ServerSettings(target_qps=100, latency_slo_s=1000.0, min_queries=200, min_duration_s=0)
    trial = run_server_trial(FakeDevice(clock, constant(int(100 * 1e9))), 100, settings, clock)
    assert not trial.valid and trial.reason.startswith("overloaded: 1 of 200 queries")


def test_find_max_qps_lands_within_ten_percent_of_the_analytic_maximum():
    slo = 0.005
    clock = FakeTimebase()
    settings = ServerSettings(latency_slo_s=slo, min_queries=20_000, min_duration_s=0, find_max_qps=True,
                              search_tolerance=0.01)
    best, trials = find_max_qps(FakeDevice(clock, constant(int(SERVICE_S * 1e9))), settings, clock)
    expected = analytic_max_qps(slo, SERVICE_S)
    assert best is not None
    assert best.qps == pytest.approx(expected, rel=0.10)
    assert all(t.valid for t in trials if t.qps <= best.qps)
    assert len(trials) <= 12


def test_run_server_reports_metric_validity_and_trials():
    clock = FakeTimebase()
    device = FakeDevice(clock, constant(int(SERVICE_S * 1e9)))
    settings = ServerSettings(latency_slo_s=0.005, min_queries=3000, min_duration_s=0, find_max_qps=True)
    result = run_server(device, Stopping(warmup=2), clock, server=settings, work_per_step=4, unit="sample")
    assert result.metric["name"] == "max_valid_qps" and result.metric["unit"] == "queries/s"
    assert result.valid
    assert result.extra["trials"][0]["valid"]
    assert result.throughput["unit"] == "sample/s"


def test_single_stream_metric_is_p90_and_validity_checks_minimums():
    clock = FakeTimebase()
    latencies = iter([MS * v for v in range(1, 11)])
    result = run_single_stream(FakeDevice(clock, lambda: next(latencies)),
                               Stopping(warmup=0).with_fixed_iterations(10), clock)
    assert result.metric == {"name": "p90_latency", "value": pytest.approx(0.0091), "unit": "s"}
    assert result.valid

    short = run_single_stream(FakeDevice(clock, constant(MS)),
                              Stopping(warmup=0, iterations=10, min_duration_s=1.0), clock)
    assert not short.valid and "< minimum 1 s" in short.validity_reason


def test_offline_throughput_is_work_over_busy_time():
    clock = FakeTimebase()
    costs = iter([2 * MS, 4 * MS] * 10)
    result = run_offline(FakeDevice(clock, lambda: next(costs)), Stopping(warmup=0, iterations=20), clock,
                         work_per_step=32, unit="sample")
    assert result.throughput["value"] == pytest.approx(32 / 0.003)
    assert result.throughput["ci_low"] < result.throughput["value"] < result.throughput["ci_high"]
    assert result.metric["name"] == "throughput"


def test_llm_server_checks_ttft_and_tpot_bounds_from_arrival():
    """A fake LLM: 20 ms prefill, then 5 ms per token, 8 tokens: E2E 55 ms per query."""
    clock = FakeTimebase()
    device = FakeStreamingDevice(clock, first_ns=20 * MS, per_token_ns=5 * MS, tokens=8)
    met = ServerSettings(target_qps=2, latency_slo_s=1.0, min_queries=50, min_duration_s=0,
                         ttft_bound_s=0.2, tpot_bound_s=0.006)
    trial = run_server_trial(device, 2, met, clock)
    assert trial.valid, trial.reason
    assert "p99 TPOT 5 ms <= bound 6 ms" in trial.reason and "<= bound 200 ms" in trial.reason
    assert min(marks[0] for marks in trial.token_offsets_ns) == 20 * MS  # an idle server: TTFT is the prefill
    assert all(marks[-1] - marks[0] == 35 * MS for marks in trial.token_offsets_ns)

    too_tight = ServerSettings(target_qps=2, latency_slo_s=1.0, min_queries=50, min_duration_s=0,
                               tpot_bound_s=0.004)
    trial = run_server_trial(device, 2, too_tight, clock)
    assert not trial.valid and "p99 TPOT 5 ms > bound 4 ms" in trial.reason

    # near saturation queueing inflates TTFT (measured from arrival) but not TPOT
    busy = ServerSettings(target_qps=15, latency_slo_s=10.0, min_queries=2000, min_duration_s=0,
                          ttft_bound_s=0.025)
    trial = run_server_trial(device, 15, busy, clock)
    assert not trial.valid and "p99 TTFT" in trial.reason and "> bound 25 ms" in trial.reason


def test_token_bounds_on_a_workload_without_tokens_are_not_silently_ignored():
    clock = FakeTimebase()
    settings = ServerSettings(target_qps=10, latency_slo_s=1.0, min_queries=20, min_duration_s=0,
                              ttft_bound_s=0.1)
    trial = run_server_trial(FakeDevice(clock, constant(MS)), 10, settings, clock)
    assert not trial.valid and "streams no tokens" in trial.reason


def test_the_schedule_asks_for_exactly_the_target_rate():
    """Scaled gaps: n arrivals over n / qps, even for a dozen LLM requests."""
    for qps, count in ((2.3, 12), (300, 2400)):
        offsets = poisson_arrivals_ns(qps, ServerSettings(min_queries=count, min_duration_s=0, seed=3))
        assert len(offsets) == count
        assert count / (offsets[-1] / 1e9) == pytest.approx(qps, rel=1e-6)
        gaps = [b - a for a, b in zip([0, *offsets], offsets)]
        assert len(set(gaps)) > count // 2  # still random gaps, not a metronome


def test_a_server_that_falls_20_percent_behind_its_target_is_invalid():
    """Capacity 80 QPS against a 100 QPS target, with an SLO too loose to catch it."""
    clock = FakeTimebase()
    settings = ServerSettings(target_qps=100, latency_slo_s=100.0, min_queries=1, min_duration_s=10)
    trial = run_server_trial(FakeDevice(clock, constant(int(12.5e6))), 100, settings, clock)
    assert trial.completed == trial.planned == 1000
    assert trial.achieved_qps == pytest.approx(80, rel=0.01)
    assert not trial.valid
    assert trial.reason.startswith("fell behind: 79.9") and "20% below the target 100" in trial.reason


def test_a_short_run_that_keeps_up_is_not_charged_its_last_latency():
    """A dozen LLM requests at 2.3/s taking 0.4 s each: the server keeps up. Counted from the
    schedule's start to the last completion, the rate would read 2.12/s, 8% short, and the
    run invalid; between first and last completion it reads the arrival rate."""
    clock = FakeTimebase()
    settings = ServerSettings(target_qps=2.3, latency_slo_s=10.0, min_queries=12, min_duration_s=0)
    trial = run_server_trial(FakeDevice(clock, constant(int(0.4e9))), 2.3, settings, clock)
    assert trial.completed == 12 and 12 / (trial.elapsed_ns / 1e9) < 0.95 * 2.3  # the old reading
    assert trial.valid, trial.reason
    assert trial.achieved_qps == pytest.approx(2.3, rel=0.05)


def test_a_server_that_keeps_up_is_valid_and_says_its_rate():
    clock = FakeTimebase()
    settings = ServerSettings(target_qps=100, latency_slo_s=1.0, min_queries=1, min_duration_s=10)
    trial = run_server_trial(FakeDevice(clock, constant(int(5e6))), 100, settings, clock)
    assert trial.valid and trial.achieved_qps == pytest.approx(100, rel=0.01)
    assert "queries/s completed" in trial.reason


def test_issue_lateness_is_recorded_and_warned_about_when_it_matters():
    """A planted 0.2 ms oversleep on a 1 ms service: lateness p99 0.2 ms > 5% of the median latency."""
    clock = FakeTimebase()
    clock.oversleep_ns = 200_000
    device = FakeDevice(clock, constant(1_000_000))
    settings = ServerSettings(target_qps=100, latency_slo_s=1.0, min_queries=500, min_duration_s=0)
    result = run_server(device, Stopping(warmup=0), clock, server=settings, work_per_step=1, unit="op")
    lateness = result.extra["issue_lateness"]
    assert lateness["count"] > 400  # the queries that found the server idle
    assert lateness["p50_s"] == pytest.approx(200e-6) and lateness["max_s"] == pytest.approx(200e-6)
    assert any(w.startswith("issue lateness:") for w in result.warnings)
    # Latency still counts from the scheduled arrival, as LoadGen's does: service plus lateness.
    latencies = sorted(result.sampling.latencies_ns)
    assert latencies[len(latencies) // 2] == 1_200_000

    on_time = FakeTimebase()
    result = run_server(FakeDevice(on_time, constant(1_000_000)), Stopping(warmup=0), on_time, server=settings,
                        work_per_step=1, unit="op")
    assert result.extra["issue_lateness"]["max_s"] == 0 and result.warnings == []
    assert min(result.sampling.latencies_ns) == 1_000_000


def test_the_server_scenario_calibrates_its_wake_up_before_the_schedule_starts():
    events = []

    class RecordingClock(FakeTimebase):
        def calibrate(self):
            events.append("calibrate")
            return {"spin_threshold_ns": 123}

        def sleep_until(self, deadline_ns, *, spin=True):
            events.append("sleep")
            super().sleep_until(deadline_ns, spin=spin)

    clock = RecordingClock()
    settings = ServerSettings(target_qps=100, latency_slo_s=1.0, min_queries=20, min_duration_s=0)
    result = run_server(FakeDevice(clock, constant(1_000_000)), Stopping(warmup=0), clock, server=settings,
                        work_per_step=1, unit="op")
    assert events[0] == "calibrate" and events.count("calibrate") == 1 and "sleep" in events
    assert result.extra["wake_up"] == {"policy": "spin", "spin_threshold_ns": 123}


class SpinOrSleepClock(FakeTimebase):
    """A host whose sleeps overshoot by 90 µs (a VM's wake-up) unless the harness spins the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.spins: list[bool] = []

    def sleep_until(self, deadline_ns, *, spin=True):
        self.spins.append(spin)
        self.t = max(self.t, deadline_ns + (0 if spin else 90_000))


@pytest.mark.parametrize("wake_up, lateness_ns", [("spin", 0), ("sleep", 90_000)])
def test_the_wake_up_setting_decides_whether_the_harness_spins_and_the_lateness_counts(wake_up, lateness_ns):
    """``wake_up = "sleep"`` waits as LoadGen's issue thread does: the OS's oversleep makes each
    idle query start late, and its latency (from the scheduled arrival) includes that."""
    clock = SpinOrSleepClock()
    settings = ServerSettings(target_qps=100, latency_slo_s=1.0, min_queries=200, min_duration_s=0, wake_up=wake_up)
    result = run_server(FakeDevice(clock, constant(1_000_000)), Stopping(warmup=0), clock, server=settings,
                        work_per_step=1, unit="op")
    assert set(clock.spins) == {wake_up == "spin"}
    assert result.extra["wake_up"]["policy"] == wake_up
    assert ("spin_threshold_ns" in result.extra["wake_up"]) == (wake_up == "spin")
    assert result.extra["issue_lateness"]["p50_s"] == pytest.approx(lateness_ns / 1e9)
    latencies = sorted(result.sampling.latencies_ns)
    assert latencies[len(latencies) // 2] == 1_000_000 + lateness_ns


def test_the_host_clock_spins_for_its_measured_oversleep():
    from harness.engine.timing import HostTimebase

    clock = HostTimebase()
    facts = clock.calibrate()
    assert clock.MIN_SPIN_NS <= clock.spin_ns <= clock.MAX_SPIN_NS
    assert facts["spin_threshold_ns"] == clock.spin_ns
    assert facts["sleep_oversleep_p99_ns"] >= facts["sleep_oversleep_p50_ns"]
    assert clock.calibrate() == facts  # measured once per process
