"""What the harness costs, and whether its numbers agree with independent timers.

Every test adds its headline figure (with the goal from issue 11) to the
summary printed at the end of ``make bench``; docs/performance.md records them.
"""

from __future__ import annotations

import json
import statistics
import time
import timeit
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.contract.interface import Prepared
from harness.engine.plugins import Registry
from harness.engine.runner import Measurement, Outcome, execute
from harness.engine.spec import BenchmarkSpec
from harness.analysis.stats import summarize
from harness.engine.telemetry.environment import default_threads
from harness.engine.timing import Stopping, sample, warm_up
from harness.orchestration.launchers import SubprocessLauncher
from harness.procurement.compare import compare
from harness.results.frame import load
from harness.results.store import RunStore, build_record, read_records

LOOP_ITERATIONS = 10_000
BIG_RUN_RECORDS = 5_000  # two runs: 10,000 records loaded and compared
REPORT_RECORDS = 1_000


class NullPrepared(Prepared):
    def step(self) -> None:
        pass


def bare_loop(prepared: Prepared, iterations: int) -> None:
    step, synchronize = prepared.step, prepared.synchronize
    for _ in range(iterations):
        step()
        synchronize()


def test_run_loop_overhead_per_iteration(benchmark, figures):
    """The run loop (clock reads, a device-timer check, an append, the stopping rule) around a
    no-op step, minus a bare loop calling the same step: the floor of any reported latency."""
    prepared = NullPrepared()
    fixed = Stopping(warmup=0).with_fixed_iterations(LOOP_ITERATIONS)
    benchmark(sample, prepared, fixed)
    loop_ns = benchmark.stats.stats.median / LOOP_ITERATIONS * 1e9
    bare_ns = statistics.median(timeit.repeat(lambda: bare_loop(prepared, LOOP_ITERATIONS), number=1, repeat=30)
                                ) / LOOP_ITERATIONS * 1e9
    overhead = loop_ns - bare_ns
    benchmark.extra_info.update(loop_ns=loop_ns, bare_ns=bare_ns, overhead_ns=overhead)
    figures.add("run-loop overhead per iteration (vs a bare loop)", overhead, "ns", "< 2000 ns", overhead < 2000)


@pytest.mark.benchmark(min_rounds=5, warmup=False)
def test_worker_start_to_first_timed_iteration(benchmark, figures):
    """Launching an isolated worker until its first timed iteration: interpreter start, torch
    import, backend probe, workload build, prepare. The price of isolation, paid per benchmark."""
    spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm", params={"size": 64},
                                iterations=1, warmup=0, threads=default_threads())
    launcher = SubprocessLauncher()
    delays = []

    def launch():
        started = time.time_ns()
        outcome = launcher.launch(spec)
        assert outcome.status == "ok", outcome.failure
        delays.append((outcome.measurement.started_unix_ns - started) / 1e9)

    benchmark.pedantic(launch, rounds=5)
    delay = statistics.median(delays)
    benchmark.extra_info["start_to_first_iteration_s"] = delay
    figures.add("worker start to first timed iteration (torch)", delay, "s", "< 2 s", delay < 2)


def _ok_outcome(samples: int = 200, scale: float = 1.0) -> Outcome:
    latencies = tuple(int(1_000_000 * scale) + (i * 7919) % 5000 for i in range(samples))
    return Outcome(status="ok", unit="FLOP", work_per_step=1e9,
                   measurement=Measurement(latencies, 5, "time.perf_counter_ns", 1.0))


def test_record_write_throughput(benchmark, tmp_path, figures):
    """Records written the way runs write them: atomically, fsync'd file and folder."""
    store = RunStore.create(tmp_path)
    outcome = _ok_outcome()
    specs = [BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm", batch_size=i + 1)
             for i in range(100)]

    def write_all():
        for spec in specs:
            store.write(spec, outcome)

    benchmark.pedantic(write_all, rounds=3)
    rate = len(specs) / benchmark.stats.stats.median
    figures.add("durable record writes", rate, "records/s")


def _fill_run(root: Path, count: int, scale: float) -> Path:
    """A run folder of ``count`` ok records, written directly (the setup, not the thing measured)."""
    store = RunStore.create(root)
    outcome = _ok_outcome(scale=scale)
    for i in range(count):
        spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm", params={"size": i + 1})
        record = build_record(store.run_id, spec, outcome)
        record["host"] = "bench"
        store.record_path(spec).write_text(json.dumps(record))
    store.finish()
    return store.path


@pytest.fixture(scope="module")
def two_big_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("big")
    return _fill_run(root, BIG_RUN_RECORDS, 1.0), _fill_run(root, BIG_RUN_RECORDS, 1.05)


def test_load_and_compare_ten_thousand_records(benchmark, two_big_runs, figures):
    """harness.results.load (the DataFrame) and compare over two runs of 5,000 records each."""
    base, new = two_big_runs
    timings = {}

    def work():
        started = time.perf_counter()
        frame = load(base, new)
        timings["load"] = time.perf_counter() - started
        result = compare(read_records(base), read_records(new))
        timings["total"] = time.perf_counter() - started
        assert len(frame) == 2 * BIG_RUN_RECORDS and len(result.comparisons) == BIG_RUN_RECORDS

    benchmark.pedantic(work, rounds=1, iterations=1)
    figures.add("load 10,000 records into a DataFrame", timings["load"], "s")
    figures.add("load + compare 10,000 records (5,000 pairs)", timings["total"], "s", "< 5 s",
                timings["total"] < 5)


def test_report_for_a_thousand_records(benchmark, tmp_path, figures):
    """`bakeoff report` end to end: ranking, charts, the self-contained HTML file."""
    from harness.presentation.cli import cli

    run = _fill_run(tmp_path, REPORT_RECORDS, 1.0)
    output = tmp_path / "report.html"
    result = benchmark.pedantic(CliRunner().invoke, args=(cli, ["report", str(run), "-o", str(output)]),
                                rounds=1, iterations=1)
    assert result.exit_code == 0, result.output
    figures.add("report for 1,000 records", benchmark.stats.stats.median, "s")


def test_time_to_stable_result(figures):
    """Adaptive stopping to a ±2% median CI on gemm, against the smallest fixed iteration count
    (from a ladder) whose result reaches the same precision."""
    registry = Registry()
    workload = registry.workload("gemm", {"size": 512})
    spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm", params=workload.values,
                                threads=default_threads())
    prepared = registry.backend("torch").prepare(workload, spec)
    adaptive_rule = Stopping(warmup=5, min_iterations=10, min_duration_s=0.0, max_duration_s=60, target_ci=0.02)
    adaptive_runs, fixed_runs = [], []
    try:
        warm_up(prepared, 5)  # once, as the runner does (sample() does not warm up)
        for _ in range(3):  # alternate the two, so neither gets the cold start or the warm cache
            ladder = {}
            for count in (10, 20, 50, 100, 200, 500, 1000, 2000, 5000):
                fixed = sample(prepared, Stopping(warmup=5).with_fixed_iterations(count))
                ladder[count] = fixed.elapsed_ns / 1e9
                if fixed.achieved_ci is not None and fixed.achieved_ci <= 0.02:
                    break
            fixed_runs.append((count, ladder[count]))
            adaptive = sample(prepared, adaptive_rule)
            adaptive_runs.append((len(adaptive.latencies_ns), adaptive.elapsed_ns / 1e9))
    finally:
        prepared.close()
    adaptive_n, adaptive_s = sorted(adaptive_runs, key=lambda r: r[1])[1]
    fixed_n, fixed_s = sorted(fixed_runs, key=lambda r: r[1])[1]
    figures.add(f"adaptive stopping to ±2% CI (gemm 512, median of 3: {adaptive_n} samples)", adaptive_s, "s")
    figures.add(f"smallest fixed count reaching ±2% (median of 3: {fixed_n} samples)", fixed_s, "s")


#: Threads for the agreement checks: one, so a 2-vCPU VM's neighbours disturb both timers least.
AGREEMENT_THREADS = 1


def _alternate(first, second, rounds: int = 5) -> float:
    """Median of ``first() / second()`` over alternating rounds, so machine drift hits both."""
    return statistics.median(first() / second() for _ in range(rounds))


def test_agreement_with_torch_utils_benchmark(figures):
    """bakeoff's median for gemm 512 float32 on torch CPU against torch.utils.benchmark's
    adaptive_autorange on the same matmul, same thread count."""
    import torch
    import torch.utils.benchmark as tub

    threads = AGREEMENT_THREADS
    spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm", params={"size": 512},
                                threads=threads, stopping=Stopping(min_duration_s=2.0, target_ci=0.01))
    a, b = torch.randn(1, 512, 512), torch.randn(1, 512, 512)
    timer = tub.Timer("torch.matmul(a, b)", globals={"torch": torch, "a": a, "b": b}, num_threads=threads)

    def bakeoff_median():
        outcome = execute(spec, Registry())
        return statistics.median(outcome.measurement.latencies_ns) / 1e9

    ratio = _alternate(bakeoff_median, lambda: timer.adaptive_autorange(threshold=0.01, min_run_time=2.0).median)
    figures.add("bakeoff / torch.utils.benchmark median (gemm 512 fp32)", ratio, "x", "within ±5%",
                abs(ratio - 1) <= 0.05)


def test_agreement_with_onnxruntime_profiler(figures, tmp_path):
    """bakeoff's median for gemm 512 on ONNX Runtime CPU against the session's own profiler
    (its ``model_run`` events) on the same exported model, same threads."""
    import numpy as np
    import onnxruntime

    threads = AGREEMENT_THREADS
    spec = BenchmarkSpec.create(backend="onnxruntime", device="CPUExecutionProvider", workload="gemm",
                                params={"size": 512}, threads=threads,
                                stopping=Stopping(min_duration_s=2.0, target_ci=0.01))
    state = {}

    def bakeoff_median():
        outcome = execute(spec, Registry())
        state["model"] = outcome.details["model_paths"][0]
        return statistics.median(outcome.measurement.latencies_ns) / 1e9

    def profiler_median():
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.enable_profiling = True
        options.profile_file_prefix = str(tmp_path / "ort")
        session = onnxruntime.InferenceSession(state["model"], options, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        feeds = {i.name: rng.standard_normal((1, 512, 512), dtype=np.float32) for i in session.get_inputs()}
        for _ in range(400):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
        runs = [e["dur"] / 1e6 for e in events if e.get("name") == "model_run"][20:]  # skip warm-up
        return statistics.median(runs)

    bakeoff_median()
    ratio = _alternate(bakeoff_median, profiler_median)
    figures.add("bakeoff / onnxruntime profiler median (gemm 512 fp32)", ratio, "x", "within ±5%",
                abs(ratio - 1) <= 0.05)


def test_summarize_ten_thousand_samples(benchmark):
    samples = [1_000_000 + (i * 7919) % 50_000 for i in range(10_000)]
    benchmark(summarize, samples)


def test_cli_import_time(benchmark, figures):
    """Core imports nothing heavy, so every command starts fast."""
    import subprocess
    import sys

    benchmark.pedantic(subprocess.run, args=([sys.executable, "-c", "import harness.presentation.cli"],),
                       kwargs={"check": True}, rounds=5)
    figures.add("python -c 'import harness.presentation.cli'", benchmark.stats.stats.median, "s")

