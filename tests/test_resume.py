"""Durability: kill -9 mid-sweep, then --resume, gives exactly the uninterrupted result; Ctrl-C is clean."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.engine.spec import BenchmarkSpec
from harness.orchestration.sweep import resume
from harness.results.store import RunStore, read_manifest, read_records

BAKEOFF = Path(sys.executable).parent / "bakeoff"
SWEEP = ["run", "-b", "null", "-b", "raising", "-w", "noop", "-p", "service_us=1000",
         "--batch-size", "1", "--batch-size", "2", "--batch-size", "3", "--batch-size", "4",
         "--iterations", "150", "--warmup", "0", "-q"]


def _interruptible() -> None:
    """Ctrl-C reaches the driver as in a terminal, even when this test run was started in the
    background of a non-interactive shell (which starts it, and so its children, with SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def bakeoff(*args: str, **kw) -> subprocess.Popen:
    command = [str(BAKEOFF)] if BAKEOFF.exists() else [sys.executable, "-m", "harness.presentation.cli"]
    return subprocess.Popen([*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_interruptible, **kw)


def wait_for_records(out: Path, count: int, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [p for p in out.glob("*") if (p / "run.json").exists()]
        if runs and len(list((runs[0] / "records").glob("*.json"))) >= count:
            return runs[0]
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} records appeared in {out}")


def fingerprint(run_dir: Path) -> list[tuple[str, str, str | None]]:
    return sorted((r["key"], r["status"], (r.get("failure") or {}).get("cause")) for r in read_records(run_dir))


@pytest.mark.slow
def test_kill_9_then_resume_equals_an_uninterrupted_run(test_plugins, tmp_path):
    reference_out, interrupted_out = tmp_path / "reference", tmp_path / "interrupted"
    reference = bakeoff(*SWEEP, "--out", str(reference_out))
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    expected = fingerprint(next(reference_out.glob("*")))
    assert len(expected) == 8 and {s for _, s, _ in expected} == {"ok", "failed"}

    victim = bakeoff(*SWEEP, "--out", str(interrupted_out))
    run_dir = wait_for_records(interrupted_out, 3)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    partial = fingerprint(run_dir)
    assert 3 <= len(partial) < 8
    assert read_manifest(run_dir)["status"] == "running"  # killed: never marked finished

    resumed = bakeoff("run", "--resume", run_dir.name, "--out", str(interrupted_out))
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert fingerprint(run_dir) == expected
    files = [p.name for p in (run_dir / "records").iterdir()]
    assert len(files) == 8 and not [f for f in files if not f.endswith(".json") or f.startswith(".")]
    manifest = read_manifest(run_dir)
    assert manifest["status"] == "complete" and len(manifest["resumed_at"]) == 1


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_leaves_the_run_resumable(test_plugins, tmp_path):
    out = tmp_path / "results"
    process = bakeoff(*SWEEP, "--out", str(out))
    run_dir = wait_for_records(out, 2)
    done_at_signal = len(list((run_dir / "records").glob("*.json")))
    process.send_signal(signal.SIGINT)
    returncode = process.wait(timeout=60)
    stderr = process.stderr.read()
    assert returncode == 130, (f"exit {returncode} with {done_at_signal} of 8 records done at SIGINT; "
                               f"stderr: {stderr[-2000:]}")
    assert "Traceback" not in stderr
    assert f"bakeoff run --resume {run_dir.name}" in stderr
    assert read_manifest(run_dir)["status"] == "interrupted"
    settled = fingerprint(run_dir)
    time.sleep(0.5)
    assert fingerprint(run_dir) == settled  # the worker was killed, not orphaned

    resumed = bakeoff("run", "--resume", run_dir.name, "--out", str(out), "--json")
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert len(json.loads(stdout)["records"]) == 8


def test_resume_skips_finished_records_and_clears_stale_temporaries(test_plugins, tmp_path):
    from harness.orchestration.launchers import InlineLauncher
    from harness.orchestration.sweep import run_sweep

    specs = [BenchmarkSpec.create(backend="null", device="fake", workload="noop", batch_size=b, iterations=5)
             for b in (1, 2, 3)]
    store = RunStore.create(tmp_path, plan=specs)
    store.write(specs[0], InlineLauncher().launch(specs[0]))
    (store.path / "records" / ".half-written.json.tmp").write_text('{"trunc')
    (store.path / "records" / f"{specs[1].key()}.json").write_text("{corrupt")  # unreadable: run again
    store.unlock()  # the interrupted driver is gone

    reopened = RunStore.open(store.path)
    missing = resume(reopened)
    assert [s.key() for s in missing] == [specs[1].key(), specs[2].key()]
    assert not list(store.path.rglob("*.tmp"))
    run_sweep(missing, InlineLauncher(), reopened)
    assert len(read_records(store.path)) == 3


def test_resume_refuses_sweep_options(tmp_path):
    from click.testing import CliRunner

    from harness.presentation.cli import cli

    result = CliRunner().invoke(cli, ["run", "--resume", "x", "-b", "torch"], prog_name="bakeoff")
    assert result.exit_code == 2
    assert result.stderr.strip() == "bakeoff: error: --resume reruns the run's stored plan; drop --backend"


def _gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_a_worker_and_its_helpers_die_with_a_killed_driver(test_plugins, tmp_path):
    """kill -9 of `bakeoff run` mid-benchmark: within 5 s no process of that run remains,
    neither the worker nor a helper process the runtime started; then --resume may run."""
    import os

    pidfile, out = tmp_path / "pids", tmp_path / "results"
    driver = bakeoff("run", "-b", "spawning", "-w", "noop", "--iterations", "100000", "--warmup", "0",
                     "--out", str(out), env={**os.environ, "BAKEOFF_TEST_PIDFILE": str(pidfile)})
    deadline = time.monotonic() + 60
    while not pidfile.exists():
        assert driver.poll() is None, driver.stderr.read()
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.05)
    worker, helper = (int(v) for v in pidfile.read_text().split())
    assert not _gone(worker) and not _gone(helper)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    deadline = time.monotonic() + 5
    while not (_gone(worker) and _gone(helper)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(worker), "the worker outlived its driver"
    assert _gone(helper), "the worker's helper process outlived the run"
    run_dir = next(out.glob("*"))
    store = RunStore.open(run_dir)
    assert resume(store) != []  # no live process holds the run any more
    store.unlock()


def test_resume_refuses_while_a_process_of_the_run_still_lives(tmp_path):
    """A live holder of the run's lock (an orphaned worker) makes --resume refuse, naming it."""
    store = RunStore.create(tmp_path / "results", plan=[BenchmarkSpec.create(
        backend="null", device="fake", workload="noop")])
    store.unlock()  # the driver "died"; its worker still holds the inherited lock:
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(store.path / '.lock')!r}, os.O_RDWR)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        cli = bakeoff("run", "--resume", store.path.name, "--out", str(tmp_path / "results"))
        _, err = cli.communicate(timeout=60)
        assert cli.returncode == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "still in use by" in lines[0] and f"pid {holder.pid}" in lines[0]
    finally:
        holder.kill()
        holder.wait()
    assert resume(RunStore.open(store.path)) != []  # once it is gone, resuming works
