"""Run each benchmark in a fresh worker process (``python -m harness.worker``).

Isolation buys three things: every benchmark starts from a cold, identical
process (no allocator or thread-pool state from the previous one); thread
counts are set in the environment *before* any runtime initialises; and a
segfault, abort, out-of-memory kill or hang only costs that one benchmark.

The worker writes its outcome as JSON to a file (not stdout, which runtimes
scribble on). No file means the worker died: the exit status and the tail of
its combined stdout/stderr become the failure record.
"""

from __future__ import annotations

import json
import os
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
                    returncode = process.wait(timeout=spec.timeout_s)
                    timed_out = False
                except subprocess.TimeoutExpired:
                    self._kill(process)
                    returncode, timed_out = process.returncode, True
                except BaseException:  # Ctrl-C: never leave an orphan worker
                    self._kill(process)
                    raise
            tail = read_tail(log_path)
            return self._interpret(spec, returncode, timed_out, outcome_path, tail)

    @staticmethod
    def _kill(process: subprocess.Popen) -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            process.kill()
        process.wait()

    @staticmethod
    def _interpret(
        spec: BenchmarkSpec, returncode: int, timed_out: bool, outcome_path: Path, tail: str
    ) -> Outcome:
        if timed_out:
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
            if outcome.failure is not None and tail:
                outcome.failure.setdefault("stderr_tail", tail)
            return outcome
        if returncode < 0:
            name = signal_name(-returncode)
            return Outcome.failed(
                "signal", f"worker killed by {name}", signal=name, stderr_tail=tail
            )
        return Outcome.failed(
            "exit", f"worker exited with code {returncode} before reporting a result",
            exit_code=returncode, stderr_tail=tail,
        )
