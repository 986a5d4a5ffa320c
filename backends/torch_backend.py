"""PyTorch eager backend for any torch device: ``cpu``, ``cuda:N``, ``xpu:N``, ``mps``,
``npu:N`` (with torch_npu installed), and other PrivateUse1 devices.

Device handling goes through torch's generic device-module API
(``torch.get_device_module(type)``) rather than CUDA-only calls, so
``synchronize`` really waits on every accelerator. torch.utils.benchmark only
synchronizes CUDA, which gave wrong timings on Ascend (pytorch/pytorch#109776).
"""

from __future__ import annotations

from harness.errors import Unsupported
from harness.generation import GenerativePrepared
from harness.interface import Availability, DeviceInfo, Prepared
from backends._host import cpu_device_facts

def _import_torch():
    from backends.torch_devices import import_torch

    return import_torch()


def _parallel_backend(torch) -> str | None:
    """The ATen thread-pool implementation (OpenMP, native), from torch's build info."""
    for line in torch.__config__.parallel_info().splitlines():
        if line.startswith("ATen parallel backend:"):
            return line.split(":", 1)[1].strip()
    return None


def _accelerator_devices(torch) -> list[DeviceInfo]:
    """Every accelerator type torch might drive: devices where present, else one
    unavailable row with the precise reason (backends/torch_devices.py)."""
    from backends.torch_devices import probe_all

    rows = []
    for result in probe_all(torch):
        if not result.devices:
            rows.append(DeviceInfo(backend="torch", device=result.kind, available=False, reason=result.reason))
            continue
        for facts in result.devices:
            rows.append(DeviceInfo(
                backend="torch", device=facts["device"], model=facts.get("model"),
                memory_bytes=facts.get("memory_bytes"), runtime_version=facts.get("runtime_version"),
            ))
    return rows


class TorchBackend:
    name = "torch"

    def probe(self) -> Availability:
        try:
            torch = _import_torch()
        except Exception as exc:  # noqa: BLE001
            return Availability.no(f"torch is not importable ({type(exc).__name__}: {exc})")
        return Availability.yes(version=torch.__version__)

    def devices(self) -> list[DeviceInfo]:
        torch = _import_torch()
        cpu = DeviceInfo(
            backend=self.name,
            device="cpu",
            runtime_version=torch.__version__,
            extra={"parallel_backend": _parallel_backend(torch), "threads": torch.get_num_threads()},
            **cpu_device_facts(),
        )
        return [cpu, *_accelerator_devices(torch)]

    def prepare(self, workload, spec) -> Prepared:
        if getattr(workload, "onnx_only", False):
            raise Unsupported("an ONNX model file runs on ONNX-capable backends (onnxruntime, openvino), not torch")
        torch = _import_torch()
        device = torch.device(spec.device)
        if spec.threads:
            torch.set_num_threads(spec.threads)
        module_api = torch.get_device_module(device.type) if device.type != "cpu" else None
        _check_bf16(module_api, device, spec.dtype)
        if module_api is not None and hasattr(module_api, "reset_peak_memory_stats"):
            module_api.reset_peak_memory_stats(device)
        try:
            module = workload.build_module(spec.dtype).to(device)
            inputs = tuple(t.to(device) for t in workload.example_inputs(spec.batch_size, spec.dtype))
        except (RuntimeError, TypeError) as exc:
            if "not implemented" in str(exc).lower() or "unsupported" in str(exc).lower():
                raise Unsupported(f"torch {device}: {exc}") from exc
            raise
        if spec.dtype == "int8":
            module = _quantize_dynamic(torch, module, device, workload.name)
        if getattr(workload, "generative", False):
            return TorchGenerativePrepared(torch, module, inputs, device, module_api,
                                           workload.values["new_tokens"])
        return TorchPrepared(torch, module, inputs, device, module_api)


def _quantize_dynamic(torch, module, device, workload_name: str):
    """int8 dynamic quantization of every ``nn.Linear`` (weights int8, activations
    quantized per batch). Refuses rather than silently running float32."""
    if device.type != "cpu":
        raise Unsupported(f"torch dynamic int8 quantization runs on the CPU only, not {device}")
    quantized = torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)
    count = sum(1 for m in quantized.modules() if type(m).__module__.startswith("torch.ao.nn.quantized"))
    if count == 0:
        raise Unsupported(f"int8 dynamic quantization found no Linear layers in {workload_name!r}; "
                          "it would run in float32")
    return quantized


class TorchEventTimer:
    """A pair of device events around each step: the device timestamps its own queue,
    so the sample excludes host-side launch latency (CUDA events, NPU events, ...)."""

    resolution_ns = 500.0  # CUDA documents ~0.5 us event resolution

    def __init__(self, torch, device) -> None:
        self.name = f"torch.Event({device.type}, enable_timing=True)"
        self._start = torch.Event(device=device, enable_timing=True)
        self._end = torch.Event(device=device, enable_timing=True)

    def start(self) -> None:
        self._start.record()

    def stop(self) -> None:
        self._end.record()

    def elapsed_ns(self) -> int:
        """Call after synchronize(); events report milliseconds."""
        return int(round(self._start.elapsed_time(self._end) * 1e6))


def _check_bf16(module_api, device, dtype: str) -> None:
    """bf16 on an accelerator only where the device's own query says it is supported."""
    if dtype != "bfloat16" or module_api is None or not hasattr(module_api, "is_bf16_supported"):
        return
    if not module_api.is_bf16_supported():
        raise Unsupported(f"{device} does not support bfloat16 (torch.{device.type}.is_bf16_supported() is False)")


class TorchPrepared(Prepared):
    def __init__(self, torch, module, inputs, device, module_api) -> None:
        super().__init__()
        self.torch, self.module, self.inputs, self.device = torch, module, inputs, device
        self.module_api = module_api
        self.output = None
        self.details = {
            "mode": "eager",
            "threads": torch.get_num_threads(),
            "inference_mode": True,
        }
        if module_api is not None:
            self.details["device_memory_source"] = f"torch.{device.type}.max_memory_allocated"

    def step(self) -> None:
        with self.torch.inference_mode():
            self.output = self.module(*self.inputs)

    def synchronize(self) -> None:
        if self.module_api is not None:
            self.module_api.synchronize(self.device)

    def device_timer(self):
        """Device events on accelerators; the host clock on the CPU (which has no events)."""
        if self.module_api is None:
            return None
        return TorchEventTimer(self.torch, self.device)

    def peak_memory_bytes(self) -> int | None:
        if self.module_api is not None and hasattr(self.module_api, "max_memory_allocated"):
            return int(self.module_api.max_memory_allocated(self.device))
        return None

    def outputs(self):
        outputs = self.output if isinstance(self.output, (tuple, list)) else (self.output,)
        return [t.detach().float().cpu().numpy() for t in outputs if t is not None]

    def close(self) -> None:
        self.module = self.inputs = self.output = None
        if self.module_api is not None and hasattr(self.module_api, "empty_cache"):
            self.module_api.empty_cache()


class TorchGenerativePrepared(GenerativePrepared, TorchPrepared):
    """Greedy generation with the module's functional KV cache, in eager torch."""

    def __init__(self, torch, module, inputs, device, module_api, new_tokens: int) -> None:
        TorchPrepared.__init__(self, torch, module, inputs, device, module_api)
        prompt, past_key, past_value = inputs

        def call(ids, key, value):
            with torch.inference_mode():
                return module(ids, key, value)

        self.init_generation(call, call, prompt, past_key, past_value, new_tokens,
                             concat=lambda parts: torch.cat(parts, dim=1),
                             to_numpy=lambda t: t.detach().cpu().float().numpy()
                             if t.is_floating_point() else t.detach().cpu().numpy())

    def step(self) -> None:
        GenerativePrepared.step(self)

    def outputs(self):
        return GenerativePrepared.outputs(self)
