"""Host interference: a benchmark beside busy processes is flagged noisy, and compare and rank say so."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.engine.spec import BenchmarkSpec
from harness.engine.telemetry.interference import CpuTimes, InterferenceWatch, Snapshot, assess
from harness.results.derive import interference_warning as warning_text
from harness.orchestration.launchers import SubprocessLauncher
from harness.procurement.compare import compare
from harness.results.store import build_record

DOCS = Path(__file__).resolve().parent.parent / "docs"


def snapshot(wall, busy, steal=0.0, idle=0.0, own=0.0, cpus=2):
    return Snapshot(wall, CpuTimes(busy, steal, busy + steal + idle), own, cpus, None)


def test_an_idle_machine_is_not_noisy():
    # 2 CPUs for 2 s: the benchmark used 1.9 CPU-seconds and the machine 1.92 in all.
    before, after = snapshot(0, 100, idle=50, own=10), snapshot(2, 101.92, idle=52.08, own=11.9)
    result = assess(before, after, loadavg_1m=1.0)
    assert result["noisy"] is False and result["reasons"] == []
    assert result["other_cpu_share"] == pytest.approx(0.02 / 4)
    assert warning_text(result) is None


def test_other_processes_over_ten_percent_of_the_machine_make_it_noisy():
    # Over 2 s on 2 CPUs (4 CPU-s), others took 1.92 CPU-s beside our own 2.0.
    before, after = snapshot(0, 100, idle=50, own=10), snapshot(2, 103.92, idle=50.08, own=12)
    result = assess(before, after, loadavg_1m=2.6)
    assert result["other_cpu_share"] == pytest.approx(0.48)
    assert result["noisy"] is True
    text = warning_text(result)
    assert text.startswith("interference:") and "48%" in text and "2.60" in text


def test_hypervisor_steal_over_two_percent_makes_it_noisy():
    before, after = snapshot(0, 100, steal=0, idle=50, own=10), snapshot(10, 112, steal=0.8, idle=57.2, own=22)
    result = assess(before, after)
    assert result["steal_share"] == pytest.approx(0.04) and result["noisy"]
    assert "stole 4.0%" in warning_text(result)


def test_one_tick_of_others_in_a_short_window_is_within_the_resolution():
    # 0.2 s on 2 CPUs: 0.4 CPU-s of which others "took" one 10 ms tick (2.5%); resolution is 15%.
    before, after = snapshot(0, 100, idle=50, own=10), snapshot(0.2, 100.4, idle=50.0, own=10.39)
    result = assess(before, after, tick_s=0.01)
    assert result["other_cpu_share"] == pytest.approx(0.025)
    assert result["noisy"] is False


def test_device_throttling_is_noisy_too():
    before, after = snapshot(0, 100, idle=50, own=10), snapshot(2, 102, idle=52, own=12)
    result = assess(before, after, device_throttle=["hardware thermal slowdown"])
    assert result["noisy"] and "hardware thermal slowdown" in warning_text(result)


def test_unreadable_counters_are_unknown_not_quiet():
    missing = Snapshot(0, None, 0, 2, None)
    result = assess(missing, Snapshot(1, None, 1, 2, None))
    assert result["other_cpu_share"] is None and result["noisy"] is False and "unavailable" in result


def _spec(**kw):
    return BenchmarkSpec.create(backend="null", device="fake", workload="noop", params={"service_us": 2000},
                                warmup=1, iterations=600, threads=1, **kw)


@pytest.mark.slow
def test_a_benchmark_beside_two_busy_loops_is_flagged(test_plugins):
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.3)  # let them reach the scheduler's run queue
        outcome = SubprocessLauncher().launch(_spec())
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert outcome.status == "ok"
    interference = outcome.interference
    assert interference["other_cpu_share"] > 0.10
    assert interference["noisy"] is True
    record = build_record("r", _spec(), outcome)
    assert record["interference"]["noisy"]
    assert any(w.startswith("interference:") for w in record["warnings"])


@pytest.mark.slow
def test_a_run_without_busy_neighbours_records_the_field_and_warns_only_with_it(test_plugins):
    """Whatever else this machine runs (CI's own processes), the warning follows the field."""
    outcome = SubprocessLauncher().launch(_spec())
    interference = outcome.interference
    assert interference["other_cpu_share"] is not None and 0 <= interference["other_cpu_share"] <= 1
    assert interference["window_s"] > 0 and interference["cpus"] >= 1
    record = build_record("r", _spec(), outcome)
    warned = any(w.startswith("interference:") for w in record["warnings"])
    assert warned == interference["noisy"]


def test_the_watch_takes_its_snapshots_outside_the_region():
    calls = []

    def fake_snapshot():
        calls.append("snapshot")
        return snapshot(len(calls), 100 * len(calls), idle=10, own=0)

    with InterferenceWatch(fake_snapshot) as watch:
        calls.append("timed region")
    assert calls == ["snapshot", "timed region", "snapshot"]
    assert watch.result()["noisy"] is True  # the planted "others" took everything


def _record(key_run, noisy):
    return {"key": "k", "run_id": key_run, "status": "ok",
            "spec": {"backend": "torch", "device": "cpu", "workload": "gemm", "params": {}, "dtype": "float32",
                     "batch_size": 1, "scenario": "single-stream"},
            "measurement": {"latencies_ns": [1000 + i for i in range(50)]},
            "interference": {"noisy": noisy, "reasons": ["other processes used 48% of the machine's CPU time"]
                             if noisy else []}}


def test_compare_warns_when_either_side_was_noisy():
    quiet = compare([_record("a", False)], [_record("b", False)])
    assert quiet.interference_warnings == []
    noisy = compare([_record("a", False)], [_record("b", True)])
    assert len(noisy.interference_warnings) == 1
    assert "interference on the new side" in noisy.interference_warnings[0]
    assert "48%" in noisy.interference_warnings[0]


def test_rank_marks_but_keeps_a_noisy_candidate():
    from harness.hardware.catalog import load_catalog
    from harness.procurement.rank import rank

    def candidate(noisy):
        return {
            "run_id": "r", "key": f"k{noisy}", "status": "ok", "reason": None,
            "spec": {"backend": f"b{noisy}", "device": "cpu", "workload": "llm", "params": {"preset": "tiny"},
                     "dtype": "float32", "batch_size": 1, "scenario": "single-stream"},
            "unit": "token", "device_info": {"model": "AMD EPYC"},
            "stats": {"p99_s": 0.05}, "throughput": {"value": 100.0, "unit": "token/s"},
            "parity": {"passed": True}, "scenario": {"name": "single-stream", "valid": True},
            "energy": {"joules": None},
            "interference": {"noisy": noisy, "reasons": ["other processes used 48% of the machine's CPU time"]},
        }

    result = rank([candidate(True), candidate(False)], load_catalog([DOCS / "catalog.example.toml"]))
    assert len(result.ranked) == 2 and not result.excluded
    marks = {c["candidate"].split("/")[0]: c["noisy"] for c in result.ranked}
    assert marks == {"bTrue": True, "bFalse": False}


def test_device_throttling_seen_by_the_meter_reaches_the_record(test_plugins):
    from harness.engine.plugins import Registry
    from harness.engine.runner import execute
    from harness.engine.telemetry.meters import EnergyReading

    class ThrottledMeter:
        name = "fake-gpu"

        def available(self):
            return None

        def start(self):
            pass

        def stop(self):
            return EnergyReading("fake-gpu", 10.0, 1.0, "counter", throttle_reasons=["hardware thermal slowdown"])

    quiet = lambda: InterferenceWatch(lambda: snapshot(0, 100, idle=10))  # noqa: E731 - nobody else ran
    spec = BenchmarkSpec.create(backend="null", device="fake", workload="noop", iterations=5, warmup=0)
    outcome = execute(spec, Registry(), meters=lambda prepared: [ThrottledMeter()], interference=quiet)
    assert outcome.interference["device_throttle"] == ["hardware thermal slowdown"]
    assert outcome.interference["noisy"] is True
