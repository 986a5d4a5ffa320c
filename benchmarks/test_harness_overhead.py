"""How much the harness itself costs."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from harness.interface import Prepared
from harness.launchers import SubprocessLauncher
from harness.results import RunStore, build_record, load
from harness.runner import Measurement, Outcome, measure
from harness.spec import BenchmarkSpec
from harness.stats import summarize

LOOP_ITERATIONS = 10_000


class NullPrepared(Prepared):
    def step(self) -> None:
        pass


def test_run_loop_overhead_per_iteration(benchmark):
    """Time of ``measure`` per iteration around a step that does nothing: the floor of
    any latency bakeoff reports (clock reads, two method calls, one append)."""
    prepared = NullPrepared()
    result = benchmark(measure, prepared, warmup=0, iterations=LOOP_ITERATIONS)
    per_iteration_ns = benchmark.stats.stats.median / LOOP_ITERATIONS * 1e9
    benchmark.extra_info["per_iteration_ns"] = per_iteration_ns
    benchmark.extra_info["median_recorded_sample_ns"] = sorted(result.latencies_ns)[LOOP_ITERATIONS // 2]


def test_summarize_ten_thousand_samples(benchmark):
    rng = random.Random(0)
    samples = [rng.lognormvariate(13, 0.2) for _ in range(10_000)]
    benchmark(summarize, samples)


def test_build_record(benchmark):
    spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm")
    outcome = Outcome(status="ok", unit="FLOP", work_per_step=1e9,
                      measurement=Measurement(tuple(range(1_000_000, 1_001_000)), 5, "fake", 1.0))
    benchmark(build_record, "run", spec, outcome)


def test_load_hundred_records(benchmark, tmp_path):
    store = RunStore.create(tmp_path)
    for i in range(100):
        spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm", batch_size=i + 1)
        outcome = Outcome(status="ok", unit="FLOP", work_per_step=1e9,
                          measurement=Measurement(tuple(range(1_000_000, 1_000_200)), 5, "fake", 1.0))
        store.write(spec, outcome)
    frame = benchmark(load, store.path)
    assert len(frame) == 100


@pytest.mark.benchmark(min_rounds=5, warmup=False)
def test_isolated_worker_round_trip(benchmark):
    """Start-up plus tear-down of one subprocess worker with a null backend."""
    spec = BenchmarkSpec.create(backend="null", device="fake", workload="noop", iterations=1, warmup=0)
    launcher = SubprocessLauncher()
    outcome = benchmark.pedantic(launcher.launch, args=(spec,), rounds=5)
    assert outcome.status == "ok"


@pytest.mark.benchmark(min_rounds=5, warmup=False)
def test_cli_import_time(benchmark):
    """Core imports nothing heavy, so the CLI starts fast."""
    benchmark.pedantic(
        subprocess.run, args=([sys.executable, "-c", "import harness.cli"],), kwargs={"check": True}, rounds=5
    )
