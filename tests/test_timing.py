"""The sampling loop and adaptive stopping, driven by fake time."""

from __future__ import annotations

import random

import pytest

from fakes import FakeDevice, FakeTimebase, FixedDeviceTimer, constant
from harness.engine.timing import Stopping, harness_overhead_ns, relative_ci_half_width, sample, warm_up

MS = 1_000_000


def test_relative_ci_half_width_by_hand():
    # n=10: order-statistic ranks (1, 8); sorted samples 1..10, median 5.5
    assert relative_ci_half_width(list(range(1, 11))) == pytest.approx((9 - 2) / 2 / 5.5)
    assert relative_ci_half_width([5] * 5) is None  # no 95% interval from 5 samples


def test_fixed_count_times_each_step_and_leaves_warmup_to_the_runner():
    clock = FakeTimebase()
    device = FakeDevice(clock, [MS, MS, 10_000, 20_000, 30_000], sync_cost=5)
    warm_up(device, 2)  # the runner's job, before the meters start
    result = sample(device, Stopping(warmup=2, iterations=3), clock)  # sample() does not warm up again
    assert result.latencies_ns == [10_005, 20_005, 30_005]  # synchronize is inside the timed region
    assert device.calls == ["step", "sync"] * 5
    assert result.timer == "fake-clock"
    assert result.target_reached is None and "fixed count" in result.stop_reason


def test_adaptive_stops_when_minimums_are_met_for_a_steady_device():
    clock = FakeTimebase()
    stopping = Stopping(warmup=0, min_iterations=10, min_duration_s=0.05, max_duration_s=10, target_ci=0.02)
    result = sample(FakeDevice(clock, constant(MS)), stopping, clock)
    assert len(result.latencies_ns) == 50  # 50 x 1 ms reaches the 50 ms minimum duration
    assert result.target_reached is True and result.achieved_ci == 0


def test_adaptive_respects_min_iterations():
    clock = FakeTimebase()
    stopping = Stopping(warmup=0, min_iterations=25, min_duration_s=0.001, max_duration_s=100)
    result = sample(FakeDevice(clock, constant(1000 * MS)), stopping, clock)
    assert len(result.latencies_ns) == 25


def test_adaptive_samples_until_the_ci_target_is_met():
    rng = random.Random(7)
    clock = FakeTimebase()
    stopping = Stopping(warmup=0, min_iterations=10, min_duration_s=0.0, max_duration_s=1000, target_ci=0.02)
    result = sample(FakeDevice(clock, lambda: int(rng.lognormvariate(14, 0.3))), stopping, clock)
    assert result.target_reached is True
    assert result.achieved_ci <= 0.02
    assert relative_ci_half_width(result.latencies_ns) == result.achieved_ci
    # a looser target stops sooner on the same noise
    rng2, clock2 = random.Random(7), FakeTimebase()
    loose = sample(FakeDevice(clock2, lambda: int(rng2.lognormvariate(14, 0.3))),
                   Stopping(warmup=0, min_iterations=10, min_duration_s=0, max_duration_s=1000, target_ci=0.1),
                   clock2)
    assert len(loose.latencies_ns) < len(result.latencies_ns)


def test_adaptive_gives_up_at_max_duration_and_says_so():
    rng = random.Random(3)
    clock = FakeTimebase()
    bimodal = lambda: MS if rng.random() < 0.5 else 10 * MS  # noqa: E731 - the median sits between modes
    stopping = Stopping(warmup=0, min_iterations=10, min_duration_s=0.1, max_duration_s=2.0, target_ci=0.02)
    result = sample(FakeDevice(clock, bimodal), stopping, clock)
    assert result.target_reached is False
    assert result.achieved_ci > 0.02
    assert "max duration 2 s reached" in result.stop_reason
    assert 2 * 1e9 <= result.elapsed_ns <= 2 * 1e9 + 10 * MS


def test_device_timer_is_used_when_the_backend_offers_one():
    clock = FakeTimebase()
    timer = FixedDeviceTimer(device_ns=700)
    device = FakeDevice(clock, constant(MS), device_timer=timer)
    result = sample(device, Stopping(warmup=0, iterations=4), clock)
    assert result.latencies_ns == [700] * 4
    assert result.host_latencies_ns == [MS] * 4
    assert result.timer == "fake-device-events" and result.timer_resolution_ns == 500.0
    assert timer.calls[:3] == ["start", "stop", "elapsed"]


def test_harness_overhead_is_measured_on_the_given_clock():
    assert harness_overhead_ns(FakeTimebase(), iterations=100) == 0  # fake time never moves by itself
    assert harness_overhead_ns(iterations=200) > 0  # real clock reads cost something


def test_sampling_stops_at_the_sample_cap_even_if_time_stands_still(monkeypatch):
    """A clock too coarse to see a step (all-zero samples) must not loop forever."""
    import harness.engine.timing

    monkeypatch.setattr(harness.engine.timing, "MAX_SAMPLES", 500)
    clock = FakeTimebase()
    result = sample(FakeDevice(clock, constant(0)), Stopping(warmup=0, min_duration_s=0), clock)
    assert len(result.latencies_ns) == 500
    assert result.target_reached is False and "sample cap" in result.stop_reason
