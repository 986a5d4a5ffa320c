"""The backend and workload interfaces: the only contract a plugin must meet.

A **backend** wraps one runtime (PyTorch, ONNX Runtime, OpenVINO, ...). It
answers "can I run here?", names its devices, and turns a workload into a
:class:`Prepared` object: everything expensive (loading, exporting, compiling,
copying inputs to the device) happens in ``prepare``, outside the timed region.

The **runner** owns the loop and the clock. It only ever calls
``Prepared.step()`` and ``Prepared.synchronize()`` between two clock reads, so
device timing semantics live in the backend (a CUDA or NPU backend makes
``synchronize`` wait for the device), never in ``if device == "cuda"`` branches
in core.

A minimal third-party backend, registered under the entry-point group
``bakeoff.backends`` (``mybackend = "my_pkg:MyBackend"``)::

    from harness.contract.interface import Availability, DeviceInfo, Prepared

    class MyBackend:
        name = "mybackend"

        def probe(self) -> Availability:
            try:
                import my_runtime
            except ImportError as exc:
                return Availability.no(f"my_runtime is not installed ({exc})")
            return Availability.yes(version=my_runtime.__version__)

        def devices(self) -> list[DeviceInfo]:
            return [DeviceInfo(backend=self.name, device="npu:0", vendor="Acme",
                               model="Acme X1", memory_bytes=64 << 30)]

        def prepare(self, workload, spec) -> Prepared:
            model = my_runtime.compile(workload.build_module(spec.dtype), spec.device)
            inputs = my_runtime.to_device(workload.example_inputs(spec.batch_size, spec.dtype))
            return MyPrepared(model, inputs)

    class MyPrepared(Prepared):
        def __init__(self, model, inputs):
            self.model, self.inputs = model, inputs
        def step(self):
            self.model(*self.inputs)
        def synchronize(self):
            my_runtime.synchronize()

Heavy imports (torch, onnxruntime, openvino, vendor SDKs) belong inside the
methods, so listing backends stays fast and a missing SDK is a reason, not a
crash.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Protocol, Sequence, runtime_checkable

from harness.contract.errors import UserError
from harness.contract.precisions import PRECISIONS, precision

if TYPE_CHECKING:  # pragma: no cover - typing only; core never imports torch at runtime
    import torch

    from harness.engine.spec import BenchmarkSpec

#: The dtypes the harness knows by name (harness/contract/precisions.py). A backend runs the
#: ones it declares (capability ``DeclaresPrecisions``; else the classic four) and may still
#: refuse one on a device by raising :class:`harness.contract.errors.Unsupported` from ``prepare``.
KNOWN_DTYPES: tuple[str, ...] = tuple(PRECISIONS)


#: Bytes per element of a workload's float tensors at each dtype (weight-only and int8 formats
#: build and feed the module in float32).
TENSOR_BYTES = {name: p.activation_bytes for name, p in PRECISIONS.items()}
#: Bytes per stored weight at each dtype, scales included (int4: 4.5 bits = 0.5625 bytes).
WEIGHT_BYTES = {name: p.weight_bytes_per_parameter for name, p in PRECISIONS.items()}


def torch_dtype(name: str) -> "torch.dtype":
    """The torch dtype of a workload's tensors at a bakeoff dtype (imports torch lazily).

    ``int8`` means weights dynamically quantized to int8 *by the backend*, and the
    weight-only formats (``int4``, ``q4_0``...) weights the backend stores at fewer bits;
    the module is built and fed in float32 (``fp8``: bfloat16), and the backend must refuse
    (``Unsupported``) a workload it cannot quantize rather than run float32.
    """
    import torch

    return {"float32": torch.float32, "float16": torch.float16,
            "bfloat16": torch.bfloat16}[precision(name).tensor_dtype]


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run on this machine, and if not, why not."""

    available: bool
    reason: str | None = None
    version: str | None = None

    @classmethod
    def yes(cls, version: str | None = None) -> "Availability":
        return cls(True, None, version)

    @classmethod
    def no(cls, reason: str, version: str | None = None) -> "Availability":
        return cls(False, reason, version)


@dataclass(frozen=True)
class DeviceInfo:
    """Identity of one device as a backend sees it.

    ``device`` is the string a user passes to ``--device`` and that lands in
    every record: ``cpu`` or ``cuda:0`` for torch, an execution-provider name
    for ONNX Runtime, an OpenVINO device name. Unknown facts stay ``None``.
    """

    backend: str
    device: str
    vendor: str | None = None
    model: str | None = None
    memory_bytes: int | None = None
    runtime_version: str | None = None
    driver_version: str | None = None
    available: bool = True
    reason: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: The dtypes the device computes natively (harness/hardware/precision.py); ``None``: the backend
    #: does not say. A record at any other dtype carries a note, since its number measures
    #: the runtime's emulation (convert to float32 and back), not the device.
    native_dtypes: tuple[str, ...] | None = None
    #: Why each known dtype outside ``native_dtypes`` is not native, e.g.
    #: ``{"bfloat16": "CPU lacks avx512_bf16/amx_bf16"}``.
    emulated_dtypes: Mapping[str, str] = field(default_factory=dict)
    #: The device's peak rates for the run-time plausibility check (harness/hardware/plausibility.py):
    #: ``{"flop_per_s": {dtype: {"value", "basis"}}, "bytes_per_s": {"value", "basis"} | None,
    #: "inputs": {...}}``. Empty: not declared (the catalog may still know the device).
    peaks: Mapping[str, Any] = field(default_factory=dict)
    #: The cloud instance type the host reports (its DMI product name, e.g. ``m7i.large`` on
    #: AWS), so a CPU is priced as that instance where the catalog lists it; ``None`` where the
    #: host does not say (most clouds name only themselves there).
    cloud_instance: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["extra"] = dict(self.extra)
        data["native_dtypes"] = list(self.native_dtypes) if self.native_dtypes is not None else None
        data["emulated_dtypes"] = dict(self.emulated_dtypes)
        data["peaks"] = dict(self.peaks)
        return data


class Prepared(abc.ABC):
    """A workload loaded onto a device, ready to be stepped by the runner.

    ``step`` issues one unit of work (it may return before the device is done);
    ``synchronize`` blocks until all issued work has finished. The runner times
    ``step(); synchronize()`` with its own monotonic clock.
    """

    #: Facts about how the workload was prepared (exporter, cache file, provider
    #: options, effective precision). They are stored in the benchmark record.
    details: dict[str, Any]

    #: The physical device the work runs on (``cuda:0``, ``npu:1``) when the
    #: spec's device names something else, e.g. an ONNX Runtime provider. The
    #: runner picks energy meters by it; ``None`` means ``spec.device``.
    physical_device: str | None = None

    def __init__(self) -> None:
        self.details = {}

    @abc.abstractmethod
    def step(self) -> None:
        """Run one step of the workload on the prepared inputs."""

    def synchronize(self) -> None:
        """Wait for all issued work. Host-synchronous runtimes need not override this."""

    def peak_memory_bytes(self) -> int | None:
        """Peak device memory during the run, where the runtime tracks it; else ``None``."""
        return None

    def device_timer(self) -> Any | None:
        """A :class:`harness.engine.timing.DeviceTimer` (e.g. CUDA/NPU events), or ``None`` for the host clock.

        Offer one when the device can timestamp its own queue; the runner then
        records device time and keeps the host latency beside it.
        """
        return None

    def outputs(self) -> list[Any] | None:
        """The last step's outputs as host numpy arrays, for parity checks; ``None`` if unknown.

        Called only outside the timed region.
        """
        return None

    def close(self) -> None:
        """Release device memory and runtime sessions."""


@runtime_checkable
class Backend(Protocol):
    """The backend plugin protocol. See the module docstring for an example."""

    name: str

    def probe(self) -> Availability:
        """Cheaply decide whether this backend can run here. Never raise."""
        ...

    def devices(self) -> Sequence[DeviceInfo]:
        """List devices with their identity. Called only when ``probe`` said available."""
        ...

    def prepare(self, workload: "Workload", spec: "BenchmarkSpec") -> Prepared:
        """Load, export or compile ``workload`` for ``spec.device`` at ``spec.dtype``.

        Everything slow happens here, outside the timed region. Raise
        :class:`harness.contract.errors.Unsupported` for combinations this backend
        cannot run; any other exception is recorded as a failure.
        """
        ...


@dataclass(frozen=True)
class Param:
    """One declared workload parameter, validated before anything runs."""

    name: str
    type: type
    default: Any
    help: str
    minimum: float | None = None
    choices: tuple[Any, ...] | None = None
    #: The largest value allowed (a documented cap); ``None``: no cap.
    maximum: float | None = None

    def parse(self, raw: Any, *, where: str) -> Any:
        """Convert a CLI string or config value; raise :class:`UserError` naming ``where``."""
        value = raw
        if isinstance(raw, str) and self.type is not str:
            try:
                if self.type is bool:
                    if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError(raw)
                    value = raw.lower() in ("true", "1", "yes")
                else:
                    value = self.type(raw)
            except ValueError:
                raise UserError(
                    f"{where}: {self.name}={raw!r} is not a valid {self.type.__name__}"
                ) from None
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise UserError(
                f"{where}: {self.name}={raw!r} must be {self.type.__name__}, "
                f"not {type(raw).__name__}"
            )
        if self.minimum is not None and value < self.minimum:
            raise UserError(f"{where}: {self.name}={value!r} must be >= {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise UserError(f"{where}: {self.name}={value!r} must be <= {self.maximum}")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(map(str, self.choices))
            raise UserError(f"{where}: {self.name}={value!r} is not one of: {allowed}")
        return value


class Workload(abc.ABC):
    """An efficiency-focused inference job, defined once and run on every backend.

    A workload provides a seeded torch module, seeded example inputs for a batch
    size, the unit of work it does (``FLOP``, ``sample``, ``token``) and how
    much of it one step does. Backends decide how to run the module: eagerly,
    exported to ONNX, converted to OpenVINO IR.

    Subclasses declare ``name``, ``description``, ``unit`` and ``params``; the
    constructor validates keyword parameters against ``params``, so a workload
    instance is always fully resolved (defaults filled in) and its ``params``
    mapping is the workload's identity in records.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    unit: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    #: Names of the module's inputs and outputs, used for exported graphs.
    input_names: ClassVar[tuple[str, ...]] = ("input",)
    output_names: ClassVar[tuple[str, ...]] = ("output",)
    #: Seed for weights and inputs, so every backend sees identical numbers.
    seed: ClassVar[int] = 0
    #: Whether a run that names no workloads includes this one (False for
    #: workloads that need user input, such as a model file).
    default_sweep: ClassVar[bool] = True
    #: Whether the reference outputs and weight count may be cached on disk
    #: (harness/engine/cache.py), keyed by this workload's code and parameters. Only
    #: for workloads whose answer depends on nothing else; override
    #: ``cache_identity()`` to add what else it depends on.
    reference_cacheable: ClassVar[bool] = False

    def cache_identity(self) -> dict[str, Any]:
        """Extra facts the cached reference depends on (e.g. a weights package's version)."""
        return {}

    def __init__(self, **values: Any) -> None:
        declared = {p.name: p for p in self.params}
        unknown = sorted(set(values) - set(declared))
        if unknown:
            allowed = ", ".join(declared) or "none"
            raise UserError(
                f"workload {self.name!r}: unknown parameter {unknown[0]!r} (allowed: {allowed})"
            )
        where = f"workload {self.name!r}"
        self.values: dict[str, Any] = {
            p.name: p.parse(values[p.name], where=where) if p.name in values else p.default
            for p in self.params
        }

    @abc.abstractmethod
    def build_module(self, dtype: str) -> "torch.nn.Module":
        """Return the module in eval mode with seeded weights, cast to ``dtype``."""

    @abc.abstractmethod
    def example_inputs(self, batch_size: int, dtype: str) -> tuple["torch.Tensor", ...]:
        """Return seeded CPU inputs for one step at ``batch_size``."""

    @abc.abstractmethod
    def work_per_step(self, batch_size: int) -> float:
        """How many ``unit`` one step performs (e.g. FLOPs of one matmul)."""

    def flops_per_step(self, batch_size: int) -> float | None:
        """FLOPs of one step when the unit is not ``FLOP`` (``None``: the workload cannot say).

        Only for the run-time plausibility check: the achieved FLOP/s is
        compared with the device's peak (harness/hardware/plausibility.py), so an
        estimate must not undercount.
        """
        return None

    def input_bytes(self, batch_size: int, dtype: str) -> int:
        """Bytes of one step's inputs at ``dtype``, for the device-memory plausibility check.

        The default builds the inputs and counts them; override it where that
        is costly (a 1 GiB buffer). Called outside the timed region, and only
        when the runtime reports a device peak to compare with.
        """
        return sum(int(t.numel()) * int(t.element_size()) for t in self.example_inputs(batch_size, dtype))

    def materialised_bytes(self, batch_size: int, dtype: str) -> int | None:
        """Bytes of one step's inputs, outputs and weights at ``batch_size``, or ``None`` if unknown.

        Computed from the parameters alone (no torch, nothing built): planning
        refuses a batch size or parameter whose estimate exceeds the host's
        physical memory before anything runs. A lower bound is enough
        (activations may be left out); ``None`` skips the check.
        """
        return None

    def weight_bytes_with_source(self, dtype: str) -> tuple[int, str]:
        """Bytes of the model's weights at ``dtype``, and how that was determined.

        The default builds the module and counts unique parameters and buffers
        (tied weights once) at the dtype's bits per weight (harness/contract/precisions.py);
        int8 counts one byte per weight, ignoring the small per-channel scales.
        """
        module = self.build_module("float32")
        seen, count = set(), 0
        for tensor in [*module.parameters(), *module.buffers()]:
            if id(tensor) not in seen and tensor.is_floating_point():
                seen.add(id(tensor))
                count += tensor.numel()
        width = precision(dtype).weight_bytes_per_parameter
        return round(count * width), f"{count} weights x {width:g} bytes ({dtype}), counted from the module"

    def reference_outputs(self, batch_size: int) -> list[Any] | None:
        """The reference answer: torch on the CPU in float32, same seed and inputs, as numpy.

        Override when one forward call is not the workload's answer (e.g. an
        LLM's generated tokens); return ``None`` when there is no reference.
        """
        import torch

        module = self.build_module("float32")
        with torch.inference_mode():
            result = module(*self.example_inputs(batch_size, "float32"))
        results = result if isinstance(result, (tuple, list)) else (result,)
        return [t.detach().float().numpy() if t.is_floating_point() else t.numpy() for t in results]


class Scenario(abc.ABC):
    """A load pattern: how queries are issued, the headline metric, and when a run is valid.

    Scenarios are plugins like backends and workloads: registered under the
    entry-point group ``bakeoff.scenarios`` (the built-in ``single-stream``,
    ``offline``, ``server`` and ``concurrent`` register the same way, see
    harness/engine/scenarios/builtin.py). ``bakeoff run -s NAME`` runs one; its settings come
    from ``--scenario-option NAME.key=value`` or a config's ``[scenario.NAME]``
    table, validated against ``SETTINGS`` before anything runs, and the
    settings that differ from their defaults are part of each benchmark's
    identity, so runs under different settings never compare as equals.

    The runner owns the clock: ``run`` receives the prepared workload and a
    :class:`harness.engine.timing.Timebase` and returns a
    :class:`harness.engine.scenarios.ScenarioResult` (samples, metric, validity and
    reason). Build it from :func:`harness.engine.timing.sample` or
    :func:`harness.engine.scenarios.run_single_stream`, never from a clock of its own.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    #: Settings by key (``harness.contract.options.Option``: kind, default, choices, help).
    SETTINGS: ClassVar[Mapping[str, Any]] = {}
    #: Batch sizes a sweep runs when the user names none.
    default_batch_sizes: ClassVar[tuple[int, ...]] = (1,)
    #: Whether the load and SLO come from the server settings (``--qps``, ``--concurrency``,
    #: ``--latency-slo-ms``, a config's ``[server]``): the built-in server and concurrent.
    uses_server_settings: ClassVar[bool] = False
    #: Whether the energy meters' span holds only the timed samples, each one step of the
    #: workload, so energy per unit of work can be computed. False when one record covers
    #: several trials (a max-QPS search).
    samples_cover_metered_span: ClassVar[bool] = True

    def check(self, settings: Mapping[str, Any], server: Any) -> None:
        """Refuse settings that mean nothing together (raise :class:`UserError`), before anything runs."""

    def identity(self, settings: Mapping[str, Any], server: Any) -> dict[str, Any]:
        """This scenario's part of a benchmark's identity: by default its non-default settings."""
        return {"scenario_options": dict(settings)} if settings else {}

    @abc.abstractmethod
    def run(self, prepared: Prepared, stopping: Any, timebase: Any, *, settings: Mapping[str, Any],
            server: Any, work_per_step: float, unit: str) -> Any:
        """Run the load on ``prepared`` (already warmed up) and return a ``ScenarioResult``."""
