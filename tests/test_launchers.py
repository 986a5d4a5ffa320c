"""Isolated workers: a crash, exit or hang in one benchmark is a record, and the sweep goes on."""

from __future__ import annotations

import json

import pytest

from harness.contract.errors import UserError
from harness.engine.spec import BenchmarkSpec
from harness.orchestration.launchers import InlineLauncher, SubprocessLauncher, get_launcher
from harness.orchestration.sweep import run_sweep
from harness.results.frame import load
from harness.results.store import RunStore, read_manifest, read_records


def spec(backend: str, **kw) -> BenchmarkSpec:
    kw.setdefault("iterations", 5)
    kw.setdefault("warmup", 1)
    return BenchmarkSpec.create(backend=backend, device="fake", workload="noop", **kw)


def test_subprocess_worker_measures(test_plugins):
    outcome = SubprocessLauncher().launch(spec("null", threads=3))
    assert outcome.status == "ok"
    assert len(outcome.measurement.latencies_ns) == 5
    assert outcome.details["omp_num_threads"] == "3"  # thread settings reach the worker's environment


def test_worker_killed_by_signal_becomes_failed_record(test_plugins):
    outcome = SubprocessLauncher().launch(spec("aborting"))
    assert outcome.status == "failed"
    assert outcome.failure["cause"] == "signal"
    assert outcome.failure["signal"] == "SIGABRT"
    assert "aborting-backend: about to abort" in outcome.failure["stderr_tail"]


def test_worker_exit_without_result_becomes_failed_record(test_plugins):
    outcome = SubprocessLauncher().launch(spec("exiting"))
    assert outcome.failure["cause"] == "exit"
    assert outcome.failure["exit_code"] == 3
    assert "fatal driver error" in outcome.failure["stderr_tail"]


def test_hanging_worker_is_killed_at_the_time_limit(test_plugins):
    outcome = SubprocessLauncher().launch(spec("hanging", timeout_s=3))
    assert outcome.status == "failed"
    assert outcome.failure["cause"] == "timeout"
    assert "3 s time limit" in outcome.failure["message"]


def test_python_exception_in_worker_keeps_its_traceback(test_plugins):
    outcome = SubprocessLauncher().launch(spec("raising"))
    assert outcome.failure["cause"] == "error"
    assert "device lost" in outcome.failure["message"]
    assert "Traceback" in outcome.failure["traceback"]


def test_sweep_survives_a_dying_worker(test_plugins, results_dir):
    specs = [spec("null"), spec("aborting"), spec("exiting"), spec("null", batch_size=2)]
    store = RunStore.create(results_dir, settings={})
    records = run_sweep(specs, SubprocessLauncher(), store)
    assert [r["status"] for r in records] == ["ok", "failed", "failed", "ok"]
    on_disk = read_records(store.path)
    assert len(on_disk) == 4
    assert json.loads((store.path / "run.json").read_text())["status"] == "complete"
    frame = load(store.path)
    assert sorted(frame["failure_cause"].dropna()) == ["exit", "signal"]
    assert frame.loc[frame.status == "ok", "throughput"].notna().all()


def test_inline_launcher_runs_in_process(test_plugins):
    outcome = InlineLauncher().launch(spec("null"))
    assert outcome.status == "ok"
    import os

    assert outcome.details["pid"] == os.getpid()


def test_unknown_launcher_is_a_user_error():
    with pytest.raises(UserError, match="unknown launcher 'ray'"):
        get_launcher("ray")


def test_worker_over_its_memory_limit_is_stopped_by_the_kernel_not_a_poller(test_plugins, monkeypatch):
    """The limit is the kernel's (RLIMIT_DATA here, a cgroup's memory.max where one is delegated):
    the launcher never looks at the worker's memory while it runs."""
    import psutil

    def no_polling(*args, **kwargs):
        raise AssertionError("the launcher inspected the worker's process while it ran")

    monkeypatch.setattr(psutil, "Process", no_polling)
    outcome = SubprocessLauncher().launch(spec("hog", memory_limit_bytes=256 << 20, timeout_s=60,
                                               iterations=10_000))
    assert outcome.status == "failed"
    assert outcome.failure["cause"] == "out-of-memory"
    assert "256 MiB memory limit" in outcome.failure["message"]
    assert outcome.failure["enforced_by"] in ("RLIMIT_DATA", "cgroup v2 memory.max")
    assert outcome.failure["memory_limit_bytes"] == 256 << 20
    # Peak memory comes from the worker's own accounting, read once at its end.
    # (VmHWM, not getrusage: ru_maxrss survives exec, so a worker forked from a big pytest would
    # report pytest's peak.)
    assert 128 << 20 < outcome.memory["host_peak_rss_bytes"] <= 300 << 20
    assert outcome.memory["host_peak_rss_source"].startswith("VmHWM")


def test_the_launcher_waits_in_one_blocking_call(test_plugins, monkeypatch):
    """No wake-ups beside the timed loop: one ``wait(timeout=the spec's limit)``."""
    import subprocess

    calls = []
    real_wait = subprocess.Popen.wait

    def recording_wait(self, timeout=None):
        calls.append(timeout)
        return real_wait(self, timeout)

    monkeypatch.setattr(subprocess.Popen, "wait", recording_wait)
    outcome = SubprocessLauncher().launch(spec("null", timeout_s=123))
    assert outcome.status == "ok"
    assert calls == [123]
    assert "PR_SET_PDEATHSIG" in outcome.details["isolation"]["parent_death"]
    assert "lifeline pipe" in outcome.details["isolation"]["parent_death"]


def test_an_aborting_allocation_under_a_limit_is_out_of_memory(tmp_path):
    """A runtime that aborts on std::bad_alloc (no Python exception) is still an out-of-memory."""
    from harness.orchestration.launchers.process import WorkerExit

    tail = "terminate called after throwing an instance of 'std::bad_alloc'\n  what():  std::bad_alloc\n"
    limited = SubprocessLauncher._interpret(spec("null", memory_limit_bytes=1 << 30), WorkerExit(-6),
                                            tmp_path / "none.json", tail)
    assert limited.failure["cause"] == "out-of-memory" and "1024 MiB memory limit" in limited.failure["message"]
    unlimited = SubprocessLauncher._interpret(spec("null"), WorkerExit(-6), tmp_path / "none.json", tail)
    assert unlimited.failure["cause"] == "signal"


def test_memory_cgroup_is_made_only_where_the_controller_is_delegated(tmp_path):
    from harness.orchestration.launchers.isolation import MemoryCgroup

    root = tmp_path / "cgroup"
    (root / "bench.slice").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("0::/bench.slice\n")
    (root / "bench.slice" / "cgroup.subtree_control").write_text("cpu pids\n")
    group, why = MemoryCgroup.create(256 << 20, "w1", root, proc)
    assert group is None and "memory controller is not delegated" in why
    (root / "bench.slice" / "cgroup.subtree_control").write_text("cpu memory pids\n")
    group, why = MemoryCgroup.create(256 << 20, "w1", root, proc)
    assert why == "ok" and (root / "bench.slice" / "w1" / "memory.max").read_text() == str(256 << 20)
    (group.path / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n")
    assert group.oom_kills() == 1
    group.remove()
    assert not group.path.exists()
    hybrid = tmp_path / "hybrid"
    (hybrid / "unified").mkdir(parents=True)
    (hybrid / "unified" / "cgroup.controllers").write_text("")
    from harness.orchestration.launchers.isolation import cgroup2_mount

    assert cgroup2_mount(hybrid) == hybrid / "unified"
    assert cgroup2_mount(tmp_path / "none") is None


def test_memory_error_in_worker_is_out_of_memory(test_plugins):
    outcome = SubprocessLauncher().launch(spec("memory-error"))
    assert outcome.failure["cause"] == "out-of-memory"
    assert "cannot allocate 64 GiB" in outcome.failure["message"]


def test_kernel_oom_kill_is_recognised_from_the_cgroup_counter(tmp_path):
    """A SIGKILL with a grown ``oom_kill`` count is an out-of-memory, not a mere signal."""
    from harness.orchestration.launchers.process import WorkerExit, cgroup_oom_kills

    events = tmp_path / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n")
    assert cgroup_oom_kills(events) == 2
    assert cgroup_oom_kills(tmp_path / "missing") is None
    outcome = SubprocessLauncher._interpret(spec("null"), WorkerExit(-9, kernel_oom=True), tmp_path / "none.json", "")
    assert outcome.failure["cause"] == "out-of-memory" and "OOM killer" in outcome.failure["message"]
    plain = SubprocessLauncher._interpret(spec("null"), WorkerExit(-9), tmp_path / "none.json", "")
    assert plain.failure["cause"] == "signal" and plain.failure["signal"] == "SIGKILL"


def test_sweep_with_signal_hang_and_oom_backends_loses_nothing(test_plugins, results_dir):
    """The acceptance sweep: three misbehaving backends among good ones."""
    specs = [
        spec("null"),
        spec("segfaulting"),
        spec("null", batch_size=2),
        spec("hanging", timeout_s=2),
        spec("hog", memory_limit_bytes=256 << 20, timeout_s=60, iterations=10_000),
        spec("null", batch_size=3),
    ]
    store = RunStore.create(results_dir, plan=specs)
    run_sweep(specs, SubprocessLauncher(), store)
    frame = load(store.path).set_index("backend")
    assert len(frame) == 6
    assert (frame.loc["null", "status"] == "ok").all()
    assert frame.loc["segfaulting", "failure_cause"] == "signal"
    assert "SIGSEGV" in frame.loc["segfaulting", "failure_message"]
    assert frame.loc["hanging", "failure_cause"] == "timeout"
    assert frame.loc["hog", "failure_cause"] == "out-of-memory"
    assert read_manifest(store.path)["status"] == "complete"
