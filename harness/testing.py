"""The conformance suite for backend plugins: catch a wrong plugin before it produces wrong numbers.

A plugin author adds one test class to their own test suite::

    from harness.testing import BackendConformance

    class TestAcme(BackendConformance):
        backend = "acme"          # the entry-point name (or the backend class, or an instance)
        device = None             # default: the backend's first available device

and ``pytest`` runs seven contracts against the real backend on the real device:

* **availability**: ``probe()`` never raises and returns an ``Availability``;
  unavailable means a non-empty reason.
* **device identity**: ``devices()`` returns ``DeviceInfo`` rows carrying the
  backend's name, a device string, JSON-serialisable facts and, for
  unavailable rows, a reason.
* **timing**: the measured latency must track the work. The suite grows a
  ``gemm`` until one step takes milliseconds, then doubles its side (8x the
  FLOPs) and requires at least :data:`MIN_WORK_RATIO` x the latency. A backend
  whose ``step()`` or ``synchronize()`` returns before the device is done
  (the bug that gave torch.utils.benchmark wrong Ascend timings) measures
  launch overhead instead, and fails with an explanation.
* **parity** on the tiny presets of the built-in workloads, and gemm at batch
  size 2 as well: every benchmark is ok with parity passed, or ``unsupported``
  with a reason; never failed, never wrong, never unchecked.
* **memory**: a reported device peak is a byte count at least as large as the
  inputs that were on the device, and no larger than the device; a backend
  that declares device memory reporting (``DeviceMemoryReporting``) must
  report it.
* **error mapping**: each known dtype is ok or a clean ``unsupported`` skip;
  a runtime error inside the workload becomes a failed record with its
  message, not a crash, not a skip. The fault is injected through a ``gemm``
  (the kit's :class:`FaultyGemm`: gemm's name, parameters and inputs, a
  module that raises), so a backend that runs only some workloads is tested
  on one it runs.

What a backend declares it does not run (``DeclaresSupport``) is recorded as
``unsupported`` with its reason and never prepared; every contract honours it.
* **capabilities**: reports which optional capabilities
  (harness/contract/capabilities.py) the backend and its prepared objects offer, and
  fails on an attribute one typo away from a declared hook (``step_streming``)
  or a backend hook defined on the prepared object: harness would silently
  ignore either.

Each contract is also a plain function (``check_timing(backend, device)``)
raising :class:`ConformanceError` with a message that says what is wrong and
where to look, so it can be used outside pytest.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from harness.contract.capabilities import DeviceMemoryReporting, capability
from harness.contract.errors import Unsupported
from harness.contract.interface import KNOWN_DTYPES, Availability, Backend, DeviceInfo, Param, Prepared, Workload
from harness.engine.plugins import Registry
from harness.engine.runner import declared_unsupported
from harness.engine.spec import BenchmarkSpec
from harness.engine.timing import HOST, Stopping, Timebase, warm_up

#: The built-in workloads' small configurations, run for the parity contract.
PARITY_CASES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("gemm", {"size": 64}),
    ("mlp", {"hidden": 64, "layers": 2}),
    ("membw", {"size_mib": 4}),
    ("llm", {"preset": "tiny", "new_tokens": 4}),
    ("moe", {"preset": "tiny", "new_tokens": 4}),
    ("encoder", {"seq_len": 16, "weights": "random"}),
)
#: Doubling a gemm's side is 8x the FLOPs; a synchronizing backend shows at least this latency ratio.
MIN_WORK_RATIO = 3.0
#: The base step must take at least this long, so launch overhead cannot dominate the ratio.
MIN_BASE_LATENCY_NS = 2_000_000
#: gemm sides tried while growing the work (the last doubles the largest base).
GEMM_SIDES = (128, 256, 512, 1024, 2048, 4096)
TIMING_STOPPING = Stopping(warmup=2, min_iterations=5, min_duration_s=0.05, max_duration_s=1.5, target_ci=0.05)
QUICK = Stopping(warmup=1, min_iterations=3, min_duration_s=0.0, max_duration_s=5.0, target_ci=0.5)


class ConformanceError(AssertionError):
    """A contract the backend breaks, with what was observed and what to fix."""


# -- the registry the suite runs through -------------------------------------------

class FaultyGemm(Workload):
    """The runtime-error contract's workload: a ``gemm`` (same name, parameters and inputs,
    so a backend that declares or checks the workloads it runs prepares it as one) whose
    module raises inside its forward pass."""

    name = "gemm"
    description = "gemm whose forward raises RuntimeError (conformance suite only)."
    unit = "FLOP"
    params = (Param("size", int, 32, "matrix side", minimum=1),)
    input_names = ("a", "b")
    output_names = ("c",)
    MESSAGE = "conformance: injected runtime fault"

    def build_module(self, dtype: str):
        import torch

        message = self.MESSAGE

        class Faulty(torch.nn.Module):
            def forward(self, a, b):
                raise RuntimeError(message)

        return Faulty().eval()

    def example_inputs(self, batch_size: int, dtype: str):
        import torch

        n = self.values["size"]
        return (torch.ones(batch_size, n, n), torch.ones(batch_size, n, n))

    def work_per_step(self, batch_size: int) -> float:
        return 2.0 * batch_size * self.values["size"] ** 3

    def reference_outputs(self, batch_size: int):
        return None


class _Registry(Registry):
    """The installed plugins, with the backend under test and the suite's own workloads."""

    def __init__(self, backend: Backend, faulty: bool = False) -> None:
        super().__init__()
        self.under_test, self.faulty = backend, faulty

    def backend(self, name: str) -> Backend:
        return self.under_test if name == self.under_test.name else super().backend(name)

    def workload(self, name: str, params: dict[str, Any] | None = None) -> Workload:
        if self.faulty and name == FaultyGemm.name:
            return FaultyGemm(**(params or {}))
        return super().workload(name, params)


def resolve_backend(backend: Any) -> Backend:
    """An entry-point name, a backend class or an instance, as an instance."""
    if isinstance(backend, str):
        registry = Registry()
        if backend not in registry.backend_entries:
            raise ConformanceError(
                f"no backend {backend!r} is registered under the bakeoff.backends entry point "
                f"(installed: {', '.join(registry.backend_names())}); is the plugin pip-installed?")
        try:
            return registry.backend(backend)
        except RuntimeError as exc:
            raise ConformanceError(f"backend {backend!r} failed to load: {exc}") from None
    instance = backend() if isinstance(backend, type) else backend
    if not isinstance(instance, Backend):
        raise ConformanceError(f"{instance!r} does not implement the Backend protocol "
                               "(needs name, probe, devices, prepare)")
    return instance


def _execute(backend: Backend, device: str, workload: str, params: dict[str, Any],
             dtype: str = "float32", stopping: Stopping = QUICK, batch_size: int = 1, faulty: bool = False):
    from harness.engine.runner import execute

    spec = BenchmarkSpec.create(backend=backend.name, device=device, workload=workload, params=params,
                                dtype=dtype, stopping=stopping, threads=None, batch_size=batch_size)
    return spec, execute(spec, _Registry(backend, faulty))


# -- the contracts -------------------------------------------------------------------

def check_availability(backend: Any) -> Availability:
    """``probe()`` returns an ``Availability`` without raising; unavailable means a reason."""
    backend = resolve_backend(backend)
    try:
        availability = backend.probe()
    except Exception as exc:  # noqa: BLE001 - this is the contract being checked
        raise ConformanceError(
            f"{backend.name}.probe() raised {type(exc).__name__}: {exc}. probe() must never raise: "
            "catch the import or driver error and return Availability.no(reason)") from None
    if not isinstance(availability, Availability):
        raise ConformanceError(f"{backend.name}.probe() returned {type(availability).__name__}, "
                               "not harness.contract.interface.Availability")
    if not availability.available and not (availability.reason or "").strip():
        raise ConformanceError(f"{backend.name}.probe() says unavailable without a reason; users see "
                               "'unavailable: <reason>', so say what is missing")
    return availability


def check_device_identity(backend: Any) -> list[DeviceInfo]:
    """``devices()`` rows are ``DeviceInfo`` with this backend's name, a device string and JSON facts."""
    backend = resolve_backend(backend)
    rows = list(backend.devices())
    if not rows:
        raise ConformanceError(f"{backend.name}.devices() returned no rows; an available backend lists "
                               "at least one device (or one unavailable row with a reason)")
    for row in rows:
        where = f"{backend.name}.devices() row {row!r}"
        if not isinstance(row, DeviceInfo):
            raise ConformanceError(f"{where} is not a harness.contract.interface.DeviceInfo")
        if row.backend != backend.name:
            raise ConformanceError(f"{where}: backend is {row.backend!r}, expected {backend.name!r}")
        if not isinstance(row.device, str) or not row.device or any(ch.isspace() for ch in row.device):
            raise ConformanceError(f"{where}: device must be the non-empty string users pass to --device")
        if not row.available and not (row.reason or "").strip():
            raise ConformanceError(f"{where}: unavailable devices need a reason")
        if row.memory_bytes is not None and (not isinstance(row.memory_bytes, int) or row.memory_bytes <= 0):
            raise ConformanceError(f"{where}: memory_bytes must be a positive byte count or None")
        try:
            json.dumps(row.to_dict())
        except TypeError as exc:
            raise ConformanceError(f"{where}: facts must be JSON-serialisable for records ({exc})") from None
    if len({row.device for row in rows}) != len(rows):
        raise ConformanceError(f"{backend.name}.devices() lists a device name twice")
    return rows


@dataclass
class TimingEvidence:
    """What the timing contract measured: (gemm side, fastest step latency in ns)."""

    latencies_ns: list[tuple[int, float]] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if len(self.latencies_ns) < 2 or self.latencies_ns[-2][1] <= 0:
            return None
        return self.latencies_ns[-1][1] / self.latencies_ns[-2][1]


def _fastest_step_ns(backend: Backend, device: str, side: int, timebase: Timebase) -> float:
    """The fastest timed step: what the work itself takes. Load on the machine (a preempted
    thread, a late wake-up of the thread that waits for a queue) only ever adds to a step, so on a
    busy machine the median measures scheduling delays, while the fastest step still tracks the work."""
    from harness.engine.timing import sample

    registry = _Registry(backend)
    workload = registry.workload("gemm", {"size": side})
    # One host thread: on a busy machine a host thread pool waits at every barrier for a preempted
    # member, and that scheduling delay (tens of ms, whatever the work) would hide the work's growth.
    spec = BenchmarkSpec.create(backend=backend.name, device=device, workload="gemm",
                                params=workload.values, stopping=TIMING_STOPPING, threads=1)
    prepared = backend.prepare(workload, spec)
    try:
        warm_up(prepared, TIMING_STOPPING.warmup)  # as the runner does: sample() never warms up
        return float(min(sample(prepared, TIMING_STOPPING, timebase).latencies_ns))
    finally:
        prepared.close()


def check_timing(backend: Any, device: str, timebase: Timebase = HOST) -> TimingEvidence:
    """Measured latency must track the work: 8x the FLOPs, at least :data:`MIN_WORK_RATIO` x the time."""
    backend = resolve_backend(backend)
    evidence = TimingEvidence()
    for side in GEMM_SIDES:
        evidence.latencies_ns.append((side, _fastest_step_ns(backend, device, side, timebase)))
        if evidence.latencies_ns[-1][1] >= MIN_BASE_LATENCY_NS:
            break
    base_side, base = evidence.latencies_ns[-1]
    explanation = ("step() or synchronize() returns before the device has finished, so the runner "
                   "times the launch, not the work. Make synchronize() block until every issued "
                   "operation is complete (e.g. torch.<device>.synchronize(), a stream or queue "
                   "wait, or reading the result back).")
    if base < MIN_BASE_LATENCY_NS:
        first_side, first = evidence.latencies_ns[0]
        growth = (base_side / first_side) ** 3
        raise ConformanceError(
            f"{backend.name} on {device}: a gemm step stayed at {base / 1e3:.3g} µs (from {first / 1e3:.3g} µs) "
            f"while its work grew {growth:.0f}x (side {first_side} to {base_side}): {explanation}")
    doubled = _fastest_step_ns(backend, device, base_side * 2, timebase)
    evidence.latencies_ns.append((base_side * 2, doubled))
    if evidence.ratio < MIN_WORK_RATIO:
        raise ConformanceError(
            f"{backend.name} on {device}: 8x the work (gemm side {base_side} to {base_side * 2}) took only "
            f"{evidence.ratio:.2f}x the time ({base / 1e6:.3g} ms to {doubled / 1e6:.3g} ms; expected "
            f">= {MIN_WORK_RATIO:g}x): {explanation}")
    return evidence


def check_parity(backend: Any, device: str,
                 cases: Sequence[tuple[str, dict[str, Any]]] = PARITY_CASES) -> dict[str, str]:
    """Each case is ok with parity passed, or unsupported with a reason. Returns case -> verdict."""
    backend = resolve_backend(backend)
    verdicts: dict[str, str] = {}
    # Every case at batch size 1, and the first (gemm) at 2 too: a backend that ignores the
    # batch dimension, or lays batched inputs out wrongly, matches at 1 and only there.
    runs = [(workload, params, 1) for workload, params in cases] + [(cases[0][0], cases[0][1], 2)] if cases else []
    for workload, params, batch_size in runs:
        _, outcome = _execute(backend, device, workload, params, batch_size=batch_size)
        where = f"{backend.name} on {device}, {workload} {params}" + (f" at batch size {batch_size}"
                                                                       if batch_size > 1 else "")
        name = workload if batch_size == 1 else f"{workload} (batch {batch_size})"
        if outcome.status == "unsupported":
            if not (outcome.reason or "").strip():
                raise ConformanceError(f"{where}: unsupported without a reason")
            verdicts[name] = f"unsupported: {outcome.reason}"
            continue
        if outcome.status != "ok":
            failure = outcome.failure or {}
            raise ConformanceError(f"{where}: {outcome.status}: {failure.get('message') or outcome.reason}")
        parity = outcome.parity or {}
        if parity.get("passed") is None:
            raise ConformanceError(f"{where}: parity was not checked ({parity.get('reason')}); Prepared.outputs() "
                                   "must return the last step's outputs as host numpy arrays")
        if not parity["passed"]:
            raise ConformanceError(f"{where}: outputs differ from the float32 CPU reference: {parity.get('reason')}")
        verdicts[name] = f"ok: {parity.get('reason')}"
    if not any(v.startswith("ok") for v in verdicts.values()):
        raise ConformanceError(f"{backend.name} on {device}: no built-in workload ran; at least gemm must")
    return verdicts


def check_memory(backend: Any, device: str) -> int | None:
    """A reported device peak is in bytes: at least the inputs, at most the device's memory."""
    backend = resolve_backend(backend)
    side = 256
    _, outcome = _execute(backend, device, "gemm", {"size": side})
    if outcome.status != "ok":
        raise ConformanceError(f"{backend.name} on {device}: gemm {side} did not run: {outcome.reason or outcome.failure}")
    peak = (outcome.memory or {}).get("device_peak_bytes")
    reporting = capability(backend, DeviceMemoryReporting)
    if peak is None and reporting is not None and reporting.reports_device_memory(device):
        raise ConformanceError(
            f"{backend.name} on {device}: the backend declares device memory reporting "
            f"(reports_device_memory({device!r}) is True) but peak_memory_bytes() returned None")
    if peak is None:
        return None
    inputs = 2 * side * side * 4
    if not isinstance(peak, int) or peak < inputs:
        raise ConformanceError(
            f"{backend.name} on {device}: peak_memory_bytes() returned {peak!r} after a gemm whose inputs alone "
            f"take {inputs} bytes; report bytes (not KiB or MiB), as an int, or None if unknown")
    capacity = (outcome.device_info or {}).get("memory_bytes")
    if capacity and peak > capacity:
        raise ConformanceError(f"{backend.name} on {device}: peak {peak} B exceeds the device's {capacity} B")
    return peak


def check_error_mapping(backend: Any, device: str) -> dict[str, str]:
    """Each known dtype is ok or a clean skip; a runtime error in the workload is a failed record."""
    backend = resolve_backend(backend)
    verdicts: dict[str, str] = {}
    for dtype in KNOWN_DTYPES:
        _, outcome = _execute(backend, device, "gemm", {"size": 32}, dtype=dtype)
        where = f"{backend.name} on {device}, gemm at {dtype}"
        if outcome.status == "unsupported":
            if not (outcome.reason or "").strip():
                raise ConformanceError(f"{where}: unsupported without a reason")
        elif outcome.status != "ok":
            message = (outcome.failure or {}).get("message") or outcome.reason
            raise ConformanceError(
                f"{where} failed ({message}); a dtype the backend cannot run must raise "
                f"harness.contract.errors.Unsupported('<reason>') from prepare() so it is skipped cleanly")
        verdicts[dtype] = outcome.status
    spec, outcome = _execute(backend, device, FaultyGemm.name, {}, faulty=True)
    declared = declared_unsupported(backend, spec)
    if declared:  # honoured: the backend does not run float32 gemm at all, so no fault can be injected
        verdicts["runtime error"] = f"not checked: the backend declares float32 gemm unsupported ({declared})"
        return verdicts
    if outcome.status != "failed":
        raise ConformanceError(
            f"{backend.name} on {device}: a workload that raises RuntimeError gave status {outcome.status!r} "
            f"({outcome.reason}); let runtime errors propagate from prepare()/step() so they become failed "
            f"records, and raise {Unsupported.__name__} only for combinations the backend cannot run")
    message = (outcome.failure or {}).get("message", "")
    if FaultyGemm.MESSAGE not in message:
        raise ConformanceError(f"{backend.name} on {device}: the failed record lost the error's message "
                               f"(got {message!r}); keep the original exception chained")
    verdicts["runtime error"] = "failed, with its message"
    return verdicts


def check_capabilities(backend: Any, device: str,
                       cases: Sequence[tuple[str, dict[str, Any]]] = (("gemm", {"size": 32}),
                                                                       ("llm", {"preset": "tiny", "new_tokens": 2}))
                       ) -> dict[str, list[str]]:
    """The capabilities the backend and its prepared objects offer, by object; raises
    :class:`ConformanceError` on a suspect hook (a typo of a declared one, or one on the wrong object).

    Each case is prepared (not timed); a case the backend refuses with ``Unsupported`` is skipped.
    """
    from harness.contract.capabilities import BACKEND, PREPARED, offered, suspect_hooks

    backend = resolve_backend(backend)
    problems = [hook.message(f"backend {backend.name!r} ({type(backend).__name__})")
                for hook in suspect_hooks(backend, BACKEND)]
    report = {"backend": offered(backend, BACKEND)}
    registry = _Registry(backend)
    for workload_name, params in cases:
        workload = registry.workload(workload_name, params)
        spec = BenchmarkSpec.create(backend=backend.name, device=device, workload=workload_name,
                                    params=workload.values, stopping=QUICK)
        try:
            ready = backend.prepare(workload, spec)
        except Unsupported:
            continue
        try:
            where = f"{backend.name} on {device}, the prepared {workload_name} ({type(ready).__name__})"
            problems += [hook.message(where) for hook in suspect_hooks(ready, PREPARED)]
            report[f"prepared {workload_name}"] = offered(ready, PREPARED)
        finally:
            ready.close()
    if problems:
        raise ConformanceError("; ".join(problems))
    return report


def first_available_device(backend: Any) -> str | None:
    backend = resolve_backend(backend)
    availability = backend.probe()
    if not availability.available:
        return None
    return next((row.device for row in backend.devices() if row.available), None)


# -- your own pytest-benchmark tests over a bakeoff backend -------------------------------

@contextlib.contextmanager
def prepared(backend: Any, workload: str, device: str | None = None, *, dtype: str = "float32",
             batch_size: int = 1, threads: int | None = None, **params: Any) -> Iterator[Prepared]:
    """A workload prepared on a backend (built-in or plugin), closed afterwards.

    For benchmarking with pytest-benchmark directly::

        @pytest.fixture(scope="module")
        def gemm_on_torch():
            with prepared("torch", "gemm", "cpu", size=256) as p:
                yield p

        def test_gemm(benchmark, gemm_on_torch):
            benchmark(one_step(gemm_on_torch))
    """
    instance = resolve_backend(backend)
    device = device or first_available_device(instance)
    if device is None:
        raise RuntimeError(f"{instance.name}: unavailable: {instance.probe().reason}")
    registry = _Registry(instance)
    loaded = registry.workload(workload, params)
    spec = BenchmarkSpec.create(backend=instance.name, device=device, workload=workload, params=loaded.values,
                                dtype=dtype, batch_size=batch_size, threads=threads)
    ready = instance.prepare(loaded, spec)  # the backend applies spec.threads
    try:
        yield ready
    finally:
        ready.close()


def one_step(ready: Prepared) -> Callable[[], None]:
    """``step(); synchronize()``: one complete unit of work, the thing to time."""
    step, synchronize = ready.step, ready.synchronize

    def run() -> None:
        step()
        synchronize()

    return run


# -- pytest -----------------------------------------------------------------------------

class BackendConformance:
    """Subclass in a test module and set ``backend`` (and optionally ``device``, ``parity_cases``).

    Contracts that need a device skip with the backend's reason when it is
    unavailable on this machine; the availability contract always runs.
    """

    backend: Any = None
    device: str | None = None
    parity_cases: Sequence[tuple[str, dict[str, Any]]] = PARITY_CASES

    def _device(self) -> str:
        import pytest

        device = self.device or first_available_device(self.backend)
        if device is None:
            pytest.skip(f"{self.backend}: unavailable: {resolve_backend(self.backend).probe().reason}")
        return device

    def test_availability_contract(self):
        check_availability(self.backend)

    def test_device_identity(self):
        if check_availability(self.backend).available:
            check_device_identity(self.backend)

    def test_timing_contract(self):
        check_timing(self.backend, self._device())

    def test_parity(self):
        check_parity(self.backend, self._device(), self.parity_cases)

    def test_memory_reporting(self):
        check_memory(self.backend, self._device())

    def test_error_mapping(self):
        check_error_mapping(self.backend, self._device())

    def test_capabilities(self):
        check_capabilities(self.backend, self._device())
