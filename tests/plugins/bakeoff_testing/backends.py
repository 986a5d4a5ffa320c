"""Fake backends. Each step behaviour models a real failure mode of a runtime."""

import os
import sys
import time

from harness.contract.errors import Unsupported
from harness.contract.interface import Availability, DeviceInfo, Prepared


class _Fake:
    name = "fake"

    def probe(self):
        return Availability.yes(version="0.0.0")

    def devices(self):
        return [DeviceInfo(backend=self.name, device="fake", vendor="Test", model="Fake device")]

    def prepare(self, workload, spec):
        # BAKEOFF_TEST_SLOWDOWN plants a regression without changing the benchmark's identity.
        slowdown = float(os.environ.get("BAKEOFF_TEST_SLOWDOWN", "1"))
        prepared = FakePrepared(self.on_step, workload.values.get("service_us", 0) * slowdown)
        prepared.fake_outputs = self.outputs_for(workload, spec)
        prepared.details = {
            "pid": os.getpid(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        }
        return prepared

    def on_step(self):
        pass

    def outputs_for(self, workload, spec):
        """What ``Prepared.outputs()`` returns; ``None``: this fake exposes no outputs."""
        return None


class FakePrepared(Prepared):
    def __init__(self, on_step, service_us):
        super().__init__()
        self.on_step = on_step
        self.service_ns = int(service_us * 1000)
        self.steps = 0

    fake_outputs = None

    def outputs(self):
        return self.fake_outputs

    def step(self):
        self.steps += 1
        if self.service_ns:
            deadline = time.perf_counter_ns() + self.service_ns
            while time.perf_counter_ns() < deadline:
                pass
        self.on_step()


class NullBackend(_Fake):
    name = "null"


class PlantedTimer:
    """A device timer reporting planted step times, whatever the host clock does."""

    name = "planted-device-timer"
    resolution_ns = 1.0

    def __init__(self, service_ns, rng):
        self.service_ns, self.rng = service_ns, rng

    def start(self):
        pass

    def stop(self):
        pass

    def elapsed_ns(self):
        return int(self.service_ns * self.rng.lognormvariate(0.0, 0.05))


class PlantedBackend(_Fake):
    """Steps take service_us x $BAKEOFF_TEST_SLOWDOWN with 5% seeded log-normal noise
    ($BAKEOFF_TEST_SEED), as its device timer reports them; the host clock plays no part.

    A run through the real runner and worker whose samples do not depend on the machine
    being quiet: for tests of compare's statistics on real runs.
    """

    name = "planted"
    default_sweep = False

    def prepare(self, workload, spec):
        import random

        slowdown = float(os.environ.get("BAKEOFF_TEST_SLOWDOWN", "1"))
        seed = int(os.environ.get("BAKEOFF_TEST_SEED", "0"))
        prepared = PlantedPrepared(workload.values.get("service_us", 0) * 1000 * slowdown,
                                   random.Random(seed * 1_000_003 + spec.batch_size))
        prepared.details = {"pid": os.getpid()}
        return prepared


class PlantedPrepared(Prepared):
    def __init__(self, service_ns, rng):
        super().__init__()
        self.timer = PlantedTimer(service_ns, rng)

    def step(self):
        pass

    def device_timer(self):
        return self.timer


class AbortingBackend(_Fake):
    """Dies of SIGABRT mid-run, as a runtime does on a failed assertion in C++."""

    name = "aborting"

    def on_step(self):
        print("aborting-backend: about to abort", file=sys.stderr, flush=True)
        os.abort()


class ExitingBackend(_Fake):
    """Calls _exit(3) without reporting, as a runtime does on a fatal driver error."""

    name = "exiting"

    def on_step(self):
        print("exiting-backend: fatal driver error", file=sys.stderr, flush=True)
        os._exit(3)


class HangingBackend(_Fake):
    """Never returns from a step, as a deadlocked device queue does."""

    name = "hanging"

    def on_step(self):
        while True:
            time.sleep(1)


class RaisingBackend(_Fake):
    """Raises a Python exception inside a step."""

    name = "raising"

    def on_step(self):
        raise RuntimeError("device lost")


class RefusingBackend(_Fake):
    """Cannot run any dtype but float32."""

    name = "refusing"

    def prepare(self, workload, spec):
        if spec.dtype != "float32":
            raise Unsupported(f"refusing cannot run {spec.dtype}")
        return super().prepare(workload, spec)


class AbsentBackend(_Fake):
    """Installed, but its runtime finds no hardware."""

    name = "absent"

    def probe(self):
        return Availability.no("no Fake accelerator found (driver not loaded)")


class ProbeRaisesBackend(_Fake):
    name = "probe-raises"

    def probe(self):
        raise OSError("libfake.so: cannot open shared object file")


class NotABackend:
    """Registered under bakeoff.backends but implements nothing."""


class HogBackend(_Fake):
    """Allocates (and touches) 32 MiB per step and never frees it: a leak that ends in OOM."""

    name = "hog"

    def __init__(self):
        self.hoard = []

    def on_step(self):
        self.hoard.append(b"\x01" * (32 << 20))


class SelfKillingBackend(_Fake):
    """Sends itself SIGSEGV, as a runtime with a null-pointer bug does."""

    name = "segfaulting"

    def on_step(self):
        import signal

        print("segfaulting-backend: dereferencing null", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)


class MemoryErrorBackend(_Fake):
    """Raises MemoryError, as Python does when an allocation fails under a ulimit."""

    name = "memory-error"

    def on_step(self):
        raise MemoryError("cannot allocate 64 GiB")


class ParrotBackend(_Fake):
    """Returns exactly the workload's reference: passes parity."""

    name = "parrot"

    def outputs_for(self, workload, spec):
        return workload.reference_outputs(spec.batch_size)


class LiarBackend(_Fake):
    """Fast and wrong: returns the reference scaled by 1.5. Must fail parity."""

    name = "liar"

    def outputs_for(self, workload, spec):
        return [array * 1.5 for array in workload.reference_outputs(spec.batch_size)]


class RayWorkerKillingBackend(_Fake):
    """Kills the Ray worker that runs its benchmark, as when a node's process dies mid-task.

    Its worker is a child of the Ray worker (fleet runs keep the subprocess
    isolation), so the parent is killed; anywhere but under Ray it refuses.
    """

    name = "ray-worker-killer"

    def on_step(self):
        import signal

        import psutil

        parent = psutil.Process(os.getppid())
        title = " ".join(parent.cmdline())
        if not title.startswith("ray::"):
            raise RuntimeError(f"not under a Ray worker (parent: {title[:80]!r}); refusing to kill it")
        os.kill(parent.pid, signal.SIGKILL)
        time.sleep(5)  # the SIGKILL lands; this worker is then an orphan and exits


class SpawningBackend(_Fake):
    """Starts a helper process in prepare, as runtimes do (compilers, device daemons), then steps
    slowly. Writes "WORKER_PID HELPER_PID" to $BAKEOFF_TEST_PIDFILE so a test can watch both."""

    name = "spawning"

    def prepare(self, workload, spec):
        import subprocess

        helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        prepared = super().prepare(workload, spec)
        prepared.helper = helper
        pidfile = os.environ.get("BAKEOFF_TEST_PIDFILE")
        if pidfile:
            with open(pidfile + ".tmp", "w") as fh:
                fh.write(f"{os.getpid()} {helper.pid}")
            os.replace(pidfile + ".tmp", pidfile)
        return prepared

    def on_step(self):
        time.sleep(0.01)
