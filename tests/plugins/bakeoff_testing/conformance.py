"""Two backends with an asynchronous "device queue" (a worker thread running torch on the CPU),
for the conformance suite's timing contract.

``QueuedBackend`` is correct: ``step()`` enqueues, ``synchronize()`` waits for the queue.
``UnsynchronizedBackend`` has the bug torch.utils.benchmark had on Ascend: its
``synchronize()`` returns at once, so the runner times the enqueue, not the work.
``TypoBackend`` misspells two optional hooks, for the capabilities contract; ``PickyBackend``
declares the workloads it runs; ``ForgetfulBackend`` breaks its memory declaration;
``BatchBlindBackend`` ignores the batch dimension.
"""

import queue
import threading

from harness.contract.capabilities import Generative, capability
from harness.contract.errors import Unsupported
from harness.contract.interface import Availability, DeviceInfo, Prepared


class _DeviceQueue:
    """A single worker thread executing closures in order, like a device stream."""

    def __init__(self):
        self.tasks = queue.Queue()
        self.closed = False
        self.error = None  # the first failure of a queued task, raised at the next wait (as a device does)
        self.worker = threading.Thread(target=self._run, daemon=True)
        self.worker.start()

    def _run(self):
        while True:
            task = self.tasks.get()
            try:
                if task is not None and not self.closed and self.error is None:
                    task()
            except Exception as exc:  # noqa: BLE001 - reported to the host at synchronize()
                self.error = exc
            finally:
                self.tasks.task_done()
            if task is None:
                return

    def submit(self, task):
        self.tasks.put(task)

    def wait(self):
        self.tasks.join()
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def close(self):
        self.closed = True  # pending work is dropped, as a device reset would
        self.tasks.put(None)
        self.worker.join()  # at most the task in flight; a thread left in torch aborts the interpreter


class QueuedPrepared(Prepared):
    def __init__(self, module, inputs, synchronizes: bool):
        super().__init__()
        self.module, self.inputs, self.synchronizes = module, inputs, synchronizes
        self.device_queue = _DeviceQueue()
        self.result = None

    def step(self):
        import torch

        def work():
            with torch.inference_mode():
                self.result = self.module(*self.inputs)

        self.device_queue.submit(work)

    def synchronize(self):
        if self.synchronizes:
            self.device_queue.wait()

    def outputs(self):
        self.device_queue.wait()
        outputs = self.result if isinstance(self.result, (tuple, list)) else (self.result,)
        return [t.float().numpy() for t in outputs if t is not None]

    def close(self):
        self.device_queue.close()


class QueuedBackend:
    name = "queued"
    synchronizes = True

    def probe(self):
        return Availability.yes(version="1.0")

    def devices(self):
        # The queue's worker thread runs torch on this host's CPU, so the CPU's peak is the queue's.
        from harness.hardware.plausibility import host_cpu_peaks
        from harness.hardware.precision import read_cpu_features

        return [DeviceInfo(backend=self.name, device="queue0", vendor="Test", model="Threaded queue",
                           peaks=host_cpu_peaks(read_cpu_features()))]

    def prepare(self, workload, spec):
        if spec.dtype not in ("float32", "float16", "bfloat16"):
            raise Unsupported(f"{self.name} runs floating-point dtypes only, not {spec.dtype}")
        if capability(workload, Generative) is not None:
            raise Unsupported(f"{self.name} has no generation loop")
        module = workload.build_module(spec.dtype)
        inputs = workload.example_inputs(spec.batch_size, spec.dtype)
        prepared = QueuedPrepared(module, inputs, self.synchronizes)
        if spec.threads:
            # Like a real backend, honour spec.threads, in the thread that runs torch: a new
            # thread's OpenMP team is otherwise every core, and on a busy machine its barriers
            # wait for preempted members (tens of ms a step, whatever the work).
            import torch

            prepared.device_queue.submit(lambda: torch.set_num_threads(spec.threads))
        return prepared


class UnsynchronizedBackend(QueuedBackend):
    name = "unsynchronized"
    synchronizes = False


class TypoPrepared(QueuedPrepared):
    """A streaming step with its name misspelt: harness would never call it, and TTFT would be lost."""

    def step_streming(self, mark):
        self.step()
        self.synchronize()
        mark()


class TypoBackend(QueuedBackend):
    """Correct timing, but two hooks misspelt: one on the backend, one on its prepared object."""

    name = "typo"

    def check_option(self, device, options):  # ChecksOptions.check_options, misspelt
        raise ValueError("never called")

    def prepare(self, workload, spec):
        ready = super().prepare(workload, spec)
        ready.__class__ = TypoPrepared
        return ready


class PickyBackend(QueuedBackend):
    """Runs gemm and mlp only, and says so up front (DeclaresSupport); preparing anything
    else is a bug the sweep and the conformance suite must never trigger."""

    name = "picky"
    RUNS = ("gemm", "mlp")

    def unsupported_reason(self, workload, dtype, device):
        if workload not in self.RUNS:
            return f"picky runs {' and '.join(self.RUNS)} only"
        if dtype != "float32":
            return "picky computes in float32 only"
        return None

    def prepare(self, workload, spec):
        assert workload.name in self.RUNS, f"prepared {workload.name} despite declaring it unsupported"
        return super().prepare(workload, spec)


class ForgetfulBackend(QueuedBackend):
    """Declares device memory reporting, then reports none."""

    name = "forgetful"

    def reports_device_memory(self, device):
        return True


class BatchBlindPrepared(QueuedPrepared):
    """Computes only the first item of a batch: right at batch size 1, wrong beyond."""

    def __init__(self, module, inputs, synchronizes):
        super().__init__(module, tuple(t[:1] for t in inputs), synchronizes)


class BatchBlindBackend(QueuedBackend):
    name = "batch-blind"

    def prepare(self, workload, spec):
        ready = super().prepare(workload, spec)
        ready.__class__ = BatchBlindPrepared
        ready.inputs = tuple(t[:1] for t in ready.inputs)
        return ready
