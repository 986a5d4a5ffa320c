"""Run each benchmark in a fresh worker process (``python -m harness.worker``).

Isolation buys three things: every benchmark starts from a cold, identical
process (no allocator or thread-pool state from the previous one); thread
counts are set in the environment *before* any runtime initialises; and a
segfault, abort, out-of-memory kill or hang only costs that one benchmark.

The worker writes its outcome as JSON to a file (not stdout, which runtimes
scribble on). No file means the worker died: the exit status and the tail of
its combined stdout/stderr become the failure record.

While the worker runs, the launcher polls it every 50 ms: past the spec's
time limit it is killed (``timeout``); above the spec's memory limit (resident
set of the worker and its children) it is killed (``out-of-memory``). A
SIGKILL that the kernel's OOM killer delivered is recognised through the
cgroup's ``memory.events`` counter and recorded as ``out-of-memory`` too.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.runner import Outcome
from harness.spec import BenchmarkSpec

#: Environment variables that size thread pools in the common runtimes.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
STDERR_TAIL_CHARS = 4000
POLL_S = 0.05
CGROUP_MEMORY_EVENTS = Path("/sys/fs/cgroup/memory.events")


def cgroup_oom_kills(events: Path = CGROUP_MEMORY_EVENTS) -> int | None:
    """The cgroup's count of OOM kills, or ``None`` where the file is unreadable."""
    try:
        for line in events.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return None


def tree_rss_bytes(pid: int) -> int | None:
    """Resident memory of a process and all its descendants; ``None`` once it is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


@dataclass
class WorkerExit:
    """How the wait for a worker ended."""

    returncode: int
    timed_out: bool = False
    over_memory: bool = False
    peak_rss_bytes: int | None = None


def read_tail(path: Path, limit: int = STDERR_TAIL_CHARS) -> str:
    """The last ``limit`` characters of a file, decoded leniently."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit * 4))
            return fh.read().decode("utf-8", "replace")[-limit:]
    except OSError:
        return ""


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class SubprocessLauncher:
    name = "subprocess"

    def __init__(self, python: str | None = None, env: dict[str, str] | None = None) -> None:
        self.python = python or sys.executable
        self.extra_env = dict(env or {})

    def _environment(self, spec: BenchmarkSpec) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.extra_env)
        if spec.threads:
            for var in THREAD_ENV_VARS:
                env[var] = str(spec.threads)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def launch(self, spec: BenchmarkSpec) -> Outcome:
        with tempfile.TemporaryDirectory(prefix="bakeoff-worker-") as tmp:
            spec_path = Path(tmp, "spec.json")
            outcome_path = Path(tmp, "outcome.json")
            log_path = Path(tmp, "worker.log")
            spec_path.write_text(json.dumps(spec.to_dict()))
            oom_kills_before = cgroup_oom_kills()
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    [self.python, "-m", "harness.worker", str(spec_path), str(outcome_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self._environment(spec),
                    start_new_session=True,  # its own process group, so a kill reaches children
                )
                try:
                    exit_info = self._watch(process, spec)
                except BaseException:  # Ctrl-C: never leave an orphan worker
                    self._kill(process)
                    raise
            tail = read_tail(log_path)
            kernel_oom = (
                exit_info.returncode == -signal.SIGKILL
                and oom_kills_before is not None
                and (cgroup_oom_kills() or 0) > oom_kills_before
            )
            outcome = self._interpret(spec, exit_info, kernel_oom, outcome_path, tail)
            if exit_info.peak_rss_bytes is not None:
                outcome.memory = {**(outcome.memory or {}),
                                  "host_peak_rss_sampled_bytes": exit_info.peak_rss_bytes,
                                  "host_peak_rss_sampled_source": "psutil RSS of the worker and its children, "
                                                                  f"every {POLL_S * 1000:.0f} ms"}
            return outcome

    def _watch(self, process: subprocess.Popen, spec: BenchmarkSpec) -> WorkerExit:
        """Wait for the worker, enforcing the time limit and the memory limit."""
        deadline = time.monotonic() + spec.timeout_s
        peak = None
        while True:
            try:
                return WorkerExit(process.wait(timeout=POLL_S), peak_rss_bytes=peak)
            except subprocess.TimeoutExpired:
                pass
            rss = tree_rss_bytes(process.pid)
            if rss is not None:
                peak = max(peak or 0, rss)
            if spec.memory_limit_bytes is not None and rss is not None and rss > spec.memory_limit_bytes:
                self._kill(process)
                return WorkerExit(process.returncode, over_memory=True, peak_rss_bytes=peak)
            if time.monotonic() > deadline:
                self._kill(process)
                return WorkerExit(process.returncode, timed_out=True, peak_rss_bytes=peak)

    @staticmethod
    def _kill(process: subprocess.Popen) -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            process.kill()
        process.wait()

    @staticmethod
    def _interpret(
        spec: BenchmarkSpec, exit_info: WorkerExit, kernel_oom: bool, outcome_path: Path, tail: str
    ) -> Outcome:
        if exit_info.timed_out:
            return Outcome.failed(
                "timeout", f"no result within the {spec.timeout_s:g} s time limit; worker killed",
                stderr_tail=tail,
            )
        if exit_info.over_memory:
            limit_mib = spec.memory_limit_bytes / (1 << 20)
            peak_mib = (exit_info.peak_rss_bytes or 0) / (1 << 20)
            return Outcome.failed(
                "out-of-memory",
                f"worker exceeded the {limit_mib:.0f} MiB memory limit (resident {peak_mib:.0f} MiB); killed",
                peak_rss_bytes=exit_info.peak_rss_bytes, stderr_tail=tail,
            )
        if outcome_path.exists():
            try:
                outcome = Outcome.from_dict(json.loads(outcome_path.read_text()))
            except (ValueError, TypeError, KeyError) as exc:
                return Outcome.failed(
                    "error", f"worker wrote an unreadable outcome: {exc}", stderr_tail=tail
                )
            if outcome.failure is not None and tail:
                outcome.failure.setdefault("stderr_tail", tail)
            return outcome
        returncode = exit_info.returncode
        if kernel_oom:
            return Outcome.failed(
                "out-of-memory", "worker killed by the kernel OOM killer (SIGKILL)",
                signal="SIGKILL", stderr_tail=tail,
            )
        if returncode < 0:
            name = signal_name(-returncode)
            return Outcome.failed(
                "signal", f"worker killed by {name}", signal=name, stderr_tail=tail
            )
        return Outcome.failed(
            "exit", f"worker exited with code {returncode} before reporting a result",
            exit_code=returncode, stderr_tail=tail,
        )
