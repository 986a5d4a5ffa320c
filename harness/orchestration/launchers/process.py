"""Run each benchmark in a fresh worker process (``python -m harness.orchestration.worker``).

Isolation buys three things: every benchmark starts from a cold, identical
process (no allocator or thread-pool state from the previous one); thread
counts are set in the environment *before* any runtime initialises; and a
segfault, abort, out-of-memory kill or hang only costs that one benchmark.

The worker writes its outcome as JSON to a file (not stdout, which runtimes
scribble on). No file means the worker died: the exit status and the tail of
its combined stdout/stderr become the failure record.

Nothing of the launcher's runs while the worker measures: it blocks in
``wait(timeout=...)`` until the worker exits or its time limit passes (then
the whole process group is killed: ``timeout``). The memory limit is the
kernel's to enforce (a cgroup v2 ``memory.max`` where one can be made, else
the worker's own ``RLIMIT_DATA``; see isolation.py), and peak memory comes
from the worker's own accounting at the end. A worker dies with its launcher
(parent-death signal and a lifeline pipe), so a killed ``bakeoff run`` leaves
no benchmark running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from harness.engine.runner import Outcome
from harness.engine.spec import BenchmarkSpec
from harness.orchestration.launchers import isolation

#: Environment variables that size thread pools in the common runtimes.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
STDERR_TAIL_CHARS = 4000
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


@dataclass
class WorkerExit:
    """How the wait for a worker ended."""

    returncode: int
    timed_out: bool = False
    #: The kernel OOM-killed it (its own cgroup's memory.max, or the launcher's cgroup).
    kernel_oom: bool = False


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


def kill_group(pgid: int) -> None:
    """SIGKILL a worker's process group (the worker and any helper processes it started)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


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

    def launch(self, spec: BenchmarkSpec, *, keep_alive: Sequence[int] = ()) -> Outcome:
        """Run ``spec`` in a fresh worker. ``keep_alive``: descriptors the worker inherits and
        holds until it dies (the run folder's lock, so ``--resume`` sees a live worker)."""
        with tempfile.TemporaryDirectory(prefix="bakeoff-worker-") as tmp:
            spec_path = Path(tmp, "spec.json")
            outcome_path = Path(tmp, "outcome.json")
            log_path = Path(tmp, "worker.log")
            spec_path.write_text(json.dumps(spec.to_dict()))
            env = self._environment(spec)
            cgroup = None
            if spec.memory_limit_bytes:
                cgroup, _why_not = isolation.MemoryCgroup.create(spec.memory_limit_bytes,
                                                                 f"bakeoff-worker-{os.getpid()}-{Path(tmp).name}")
                if cgroup is not None:
                    env[isolation.CGROUP_ENV] = str(cgroup.path)
            oom_kills_before = cgroup_oom_kills()
            lifeline_read, lifeline_write = os.pipe()  # the worker exits at end of file: when we are gone
            env[isolation.PARENT_PID_ENV] = str(os.getpid())
            env[isolation.LIFELINE_FD_ENV] = str(lifeline_read)
            try:
                with open(log_path, "wb") as log:
                    process = subprocess.Popen(
                        [self.python, "-m", "harness.orchestration.worker", str(spec_path), str(outcome_path)],
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=env,
                        pass_fds=(lifeline_read, *keep_alive),
                        start_new_session=True,  # its own process group, so a kill reaches children
                    )
                os.close(lifeline_read)
                lifeline_read = None
                try:
                    exit_info = self._wait(process, spec)
                except BaseException:  # Ctrl-C: never leave an orphan worker
                    self._kill(process)
                    raise
                finally:
                    kill_group(process.pid)  # helper processes the worker left behind
            finally:
                os.close(lifeline_write)
                if lifeline_read is not None:  # Popen itself failed
                    os.close(lifeline_read)
                if cgroup is not None:
                    exit_info_oom = cgroup.oom_kills() > 0
                    cgroup.remove()
                else:
                    exit_info_oom = False
            tail = read_tail(log_path)
            exit_info.kernel_oom = exit_info.returncode == -signal.SIGKILL and (
                exit_info_oom or (oom_kills_before is not None and (cgroup_oom_kills() or 0) > oom_kills_before))
            return self._interpret(spec, exit_info, outcome_path, tail)

    def _wait(self, process: subprocess.Popen, spec: BenchmarkSpec) -> WorkerExit:
        """Block until the worker exits or its time limit passes. No polling: the timed loop
        has the machine to itself."""
        try:
            return WorkerExit(process.wait(timeout=spec.timeout_s))
        except subprocess.TimeoutExpired:
            self._kill(process)
            return WorkerExit(process.returncode, timed_out=True)

    @staticmethod
    def _kill(process: subprocess.Popen) -> None:
        kill_group(process.pid)
        try:
            process.kill()
        except ProcessLookupError:
            pass
        process.wait()

    @staticmethod
    def _interpret(spec: BenchmarkSpec, exit_info: WorkerExit, outcome_path: Path, tail: str) -> Outcome:
        limit = spec.memory_limit_bytes
        limit_text = f"{limit / (1 << 20):.0f} MiB memory limit" if limit else None
        if exit_info.timed_out:
            return Outcome.failed(
                "timeout", f"no result within the {spec.timeout_s:g} s time limit; worker killed",
                stderr_tail=tail,
            )
        if outcome_path.exists():
            try:
                outcome = Outcome.from_dict(json.loads(outcome_path.read_text()))
            except (ValueError, TypeError, KeyError) as exc:
                return Outcome.failed(
                    "error", f"worker wrote an unreadable outcome: {exc}", stderr_tail=tail
                )
            if outcome.failure is not None:
                if tail:
                    outcome.failure.setdefault("stderr_tail", tail)
                if limit and outcome.failure.get("cause") == "out-of-memory":
                    mechanism = ((outcome.details or {}).get("isolation", {}).get("memory_limit") or {}).get(
                        "mechanism")
                    outcome.failure.update(memory_limit_bytes=limit, enforced_by=mechanism)
                    outcome.failure["message"] = f"worker reached its {limit_text} ({mechanism}): " \
                                                 f"{outcome.failure['message']}"
                    outcome.reason = f"out-of-memory: {outcome.failure['message']}"
            return outcome
        returncode = exit_info.returncode
        if exit_info.kernel_oom:
            where = f" at its {limit_text}" if limit else ""
            return Outcome.failed(
                "out-of-memory", f"worker killed by the kernel OOM killer (SIGKILL){where}",
                signal="SIGKILL", memory_limit_bytes=limit, stderr_tail=tail,
            )
        if limit and returncode != 0 and isolation.looks_like_oom(tail):
            # A runtime that aborts on a failed allocation (std::bad_alloc) instead of raising.
            how = f"killed by {signal_name(-returncode)}" if returncode < 0 else f"exited with code {returncode}"
            return Outcome.failed(
                "out-of-memory", f"worker {how} after an allocation failed under its {limit_text} "
                                 f"({isolation.RLIMIT_MECHANISM})",
                memory_limit_bytes=limit, enforced_by=isolation.RLIMIT_MECHANISM, stderr_tail=tail,
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
