"""PyTorch eager backend for any torch device: ``cpu``, ``cuda:N``, ``xpu:N``, ``mps``,
``npu:N`` (with torch_npu installed), and other PrivateUse1 devices.

Device handling goes through torch's generic device-module API
(``torch.get_device_module(type)``) rather than CUDA-only calls, so
``synchronize`` really waits on every accelerator. torch.utils.benchmark only
synchronizes CUDA, which gave wrong timings on Ascend (pytorch/pytorch#109776).
"""

from __future__ import annotations

import time

from harness.contract.capabilities import Generative, OnnxModelFile, capability
from harness.contract.errors import Unsupported
from harness.contract.interface import Availability, DeviceInfo, Prepared
from harness.contract.options import Option
from harness.contract.precisions import CLASSIC_PRECISIONS
from harness.engine.generation import GenerativePrepared
from backends._host import cpu_device_facts, device_meters

#: Graph-capture modes. Each is part of the record's identity, so compiled and
#: eager runs are never compared as equals.
GRAPH_MODES = ("eager", "compile", "device-graph")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: Device types with a graph-capture API in their device module (torch.cuda.CUDAGraph,
#: torch.npu.NPUGraph, the ACL-graph counterpart of CUDA graphs).
GRAPH_CAPTURE_DEVICES = {"cuda": "CUDAGraph", "npu": "NPUGraph"}

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
                **_precision_fields(facts),
            ))
    return rows


def _precision_fields(facts) -> dict:
    """Native dtypes of an accelerator where its own query says (CUDA compute capability);
    nothing declared otherwise (ROCm, npu, xpu, mps), so no note is guessed."""
    from harness.hardware.precision import cuda_precision

    if facts.get("capability") is None:
        return {}
    fields = cuda_precision(facts["capability"]).device_fields()
    fields["extra"] = {"compute_capability": "sm_{}{}".format(*facts["capability"])}
    return fields


class TorchBackend:
    name = "torch"
    #: The classic four, and float8 e4m3 where the device has float8 tensor cores (prepare refuses elsewhere).
    precisions = (*CLASSIC_PRECISIONS, "fp8")
    OPTIONS = {
        "graph": Option("str", "eager", GRAPH_MODES,
                        "eager: op by op. compile: torch.compile (inductor; on npu the torchair backend). "
                        "device-graph: capture one step as a CUDA graph (cuda) or ACL graph (npu) and "
                        "replay it; static shapes, so not for generative decode."),
        "compile_mode": Option("str", "default", COMPILE_MODES,
                               "torch.compile mode with graph=compile; on npu reduce-overhead is the ACL "
                               "graph and max-autotune the GE graph (torchair)."),
    }

    def ray_requirements(self, device: str) -> dict | None:
        """What a fleet node must offer to run ``device`` (harness/orchestration/fleet.py): Ray's own
        GPU and NPU resources; CPU and other devices fall back to CPUs and user resources."""
        kind = device.split(":")[0]
        if kind == "cuda":  # NVIDIA and AMD (ROCm) GPUs are both Ray's "GPU"
            return {"num_gpus": 1}
        if kind == "npu":
            return {"resources": {"NPU": 1}}
        return None

    def check_options(self, device: str, options) -> None:
        """Refuse option combinations that mean nothing. (A device without graph
        capture is not an input error: its row is skipped as unsupported, so one
        sweep can ask for device graphs wherever they exist.)"""
        graph = options.get("graph", "eager")
        if "compile_mode" in options and graph != "compile":
            raise ValueError(f"compile_mode={options['compile_mode']} needs graph=compile (graph is {graph})")

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

    def reports_device_memory(self, device: str) -> bool:
        """Accelerators report their allocator's peak (capability DeviceMemoryReporting); the CPU does not."""
        return device != "cpu"

    def prepare(self, workload, spec) -> Prepared:
        if capability(workload, OnnxModelFile) is not None:
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
        fp8_layers = None
        if spec.dtype == "fp8":
            _check_fp8(torch, device)
            module, fp8_layers = fp8_linear_layers(torch, module, workload.name)
        options = spec.options_dict
        graph = options.get("graph", "eager")
        generative = capability(workload, Generative)
        if graph == "device-graph" and device.type not in GRAPH_CAPTURE_DEVICES:
            raise Unsupported(f"graph=device-graph needs a device with graph capture "
                              f"({', '.join(GRAPH_CAPTURE_DEVICES)}); {device.type} has none")
        if graph == "device-graph" and generative is not None:
            raise Unsupported("graph=device-graph captures static shapes; generative decode grows its KV "
                              "cache every token (use graph=compile)")
        graph_details = {"mode": graph}
        if graph == "compile":
            module, graph_details = _compile(torch, module, device, options.get("compile_mode", "default"))
        if generative is not None:
            prepared = TorchGenerativePrepared(torch, module, inputs, device, module_api, generative.new_tokens)
        elif graph == "device-graph":
            prepared = TorchGraphPrepared(torch, module, inputs, device, module_api)
            graph_details = prepared.capture_details
        else:
            prepared = TorchPrepared(torch, module, inputs, device, module_api)
        prepared.details.update(graph_details)
        if fp8_layers is not None:
            prepared.details["fp8"] = fp8_layers
        if (graph == "compile" and device.type == "cuda" and generative is None
                and options.get("compile_mode") in ("reduce-overhead", "max-autotune")):
            prepared.mark_cudagraph_step = True
        if graph == "compile":
            # Compilation happens on the first call: do it here, outside the timed region.
            started = time.perf_counter()
            prepared.step()
            prepared.synchronize()
            prepared.details["compile_s"] = time.perf_counter() - started
        return prepared


def _compile(torch, module, device, mode: str):
    """torch.compile with the device's compiler: inductor, or torchair on Ascend."""
    if device.type == "npu":
        try:
            import torchair  # shipped inside torch_npu as a lazy module
        except Exception as exc:  # noqa: BLE001
            raise Unsupported(f"graph=compile on npu needs torchair (part of torch_npu): {exc}") from exc
        config = torchair.CompilerConfig()
        if mode in ("reduce-overhead", "max-autotune"):
            config.mode = mode
        backend = torchair.get_npu_backend(compiler_config=config)
        compiled = torch.compile(module, backend=backend, dynamic=False)
        return compiled, {"mode": "compile", "compiler": f"torchair ({getattr(config.mode, 'value', config.mode)})"}
    compiled = torch.compile(module, mode=None if mode == "default" else mode)
    return compiled, {"mode": "compile", "compiler": "inductor", "compile_mode": mode}


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


#: torch._scaled_mm needs both matrix dimensions divisible by 16 (cuBLASLt's float8 rule).
FP8_ALIGNMENT = 16
#: The largest finite float8 e4m3fn value: a tensor is scaled so its largest magnitude lands there.
E4M3_MAX = 448.0


def _check_fp8(torch, device) -> None:
    """fp8 runs where the device has float8 tensor cores: CUDA compute capability 8.9+ (Ada, Hopper)."""
    if device.type != "cuda":
        raise Unsupported(f"fp8 (e4m3) needs float8 tensor cores (CUDA compute capability >= 8.9, via "
                          f"torch._scaled_mm); {device.type} has none, and an emulated fp8 number would "
                          "measure the conversion, not the device")
    capability = torch.cuda.get_device_capability(device)
    if tuple(capability) < (8, 9):
        raise Unsupported(f"fp8 (e4m3) needs CUDA compute capability >= 8.9; {device} is "
                          f"sm_{capability[0]}{capability[1]}")


def fp8_linear_layers(torch, module, workload_name: str):
    """Every ``nn.Linear`` whose shape ``torch._scaled_mm`` takes, as an :class:`Fp8Linear`:
    weights stored in float8 e4m3 with one float32 scale per tensor, activations scaled per call.
    Returns the module and ``{"layers": converted, "kept": left in the module's dtype}``;
    refuses when nothing converts, rather than running bfloat16 under an fp8 label."""
    converted, kept = 0, 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not torch.nn.Linear:
                continue
            if child.in_features % FP8_ALIGNMENT or child.out_features % FP8_ALIGNMENT:
                kept += 1
                continue
            setattr(parent, name, Fp8Linear.of(torch, child))
            converted += 1
    if converted == 0:
        raise Unsupported(f"fp8: no Linear layer of {workload_name!r} has dimensions divisible by "
                          f"{FP8_ALIGNMENT}; it would run in bfloat16")
    return module, {"layers": converted, "kept": kept, "scaling": "per-tensor (weights once, activations per call)",
                    "kernel": "torch._scaled_mm"}


def _fp8_module_class():
    import torch

    class _Fp8Linear(torch.nn.Module):
        """y = x W^T + b with W and x in float8 e4m3 (per-tensor scales), out in bfloat16."""

        def __init__(self, weight, scale, bias) -> None:
            super().__init__()
            self.register_buffer("weight_t", weight.t())  # [in, out], column-major as _scaled_mm wants
            self.register_buffer("weight_scale", scale)
            self.bias = None if bias is None else torch.nn.Parameter(bias.to(torch.bfloat16), requires_grad=False)

        def forward(self, x):
            shape = x.shape
            flat = x.reshape(-1, shape[-1])
            scale = (flat.abs().amax().float() / E4M3_MAX).clamp(min=1e-12)
            quantized = (flat.float() / scale).to(torch.float8_e4m3fn)
            out = torch._scaled_mm(quantized, self.weight_t, scale_a=scale, scale_b=self.weight_scale,
                                   bias=self.bias, out_dtype=torch.bfloat16)
            return out.reshape(*shape[:-1], out.shape[-1])

    return _Fp8Linear


class Fp8Linear:
    """Builds the float8 replacement of one ``nn.Linear`` (the class is made on first use, so
    importing this module imports no torch)."""

    _class = None

    @classmethod
    def of(cls, torch, linear):
        if cls._class is None:
            cls._class = _fp8_module_class()
        weight = linear.weight.detach().float()
        scale = (weight.abs().amax() / E4M3_MAX).clamp(min=1e-12)
        quantized = (weight / scale).to(torch.float8_e4m3fn)
        bias = None if linear.bias is None else linear.bias.detach()
        return cls._class(quantized, scale.to(torch.float32), bias)


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

    #: Set for torch.compile modes that use CUDA graph trees: each step must then
    #: start a new graph "generation", or replays would overwrite outputs still held.
    mark_cudagraph_step = False

    def step(self) -> None:
        """One forward; its output is dropped as the step ends, as in torch.utils.benchmark.

        Holding it until the next step kept two output buffers alive and made the next
        forward write into the colder one: gemm 1024 on one thread ran 3% slower that way
        (torch.utils.benchmark timing both statements, 30 interleaved rounds, IQR 1.012-1.051),
        a cost of the harness and not of the model. :meth:`outputs` computes once more, untimed."""
        if self.mark_cudagraph_step:
            self.torch.compiler.cudagraph_mark_step_begin()
        with self.torch.inference_mode():
            self.module(*self.inputs)

    def synchronize(self) -> None:
        if self.module_api is not None:
            self.module_api.synchronize(self.device)

    def energy_meters(self):
        """NVML or npu-smi for the device, and RAPL for the host (capability EnergyMetered)."""
        return device_meters(self.device.type, self.device.index or 0)

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
        """The outputs for the parity check: one more forward after the timed loop (a captured
        device graph keeps its own output buffers, which every replay refreshes)."""
        if self.output is None:
            if self.mark_cudagraph_step:  # as step() does: a new graph generation for this call
                self.torch.compiler.cudagraph_mark_step_begin()
            with self.torch.inference_mode():
                self.output = self.module(*self.inputs)
            self.synchronize()
        outputs = self.output if isinstance(self.output, (tuple, list)) else (self.output,)
        return [t.detach().float().cpu().numpy() for t in outputs if t is not None]

    def close(self) -> None:
        self.module = self.inputs = self.output = None
        if self.module_api is not None and hasattr(self.module_api, "empty_cache"):
            self.module_api.empty_cache()


class TorchGraphPrepared(TorchPrepared):
    """One step captured as a device graph (CUDA graph, NPU ACL graph) and replayed.

    Capture follows the CUDA-graphs recipe: warm up on a side stream so lazy
    initialisation is not captured, capture on that stream, then each step is
    a single ``replay()`` over the same input and output buffers.
    """

    WARMUP_STEPS = 3

    def __init__(self, torch, module, inputs, device, module_api) -> None:
        super().__init__(torch, module, inputs, device, module_api)
        graph_class = getattr(module_api, GRAPH_CAPTURE_DEVICES[device.type], None)
        if graph_class is None or not hasattr(module_api, "graph"):
            raise Unsupported(f"torch.{device.type} has no {GRAPH_CAPTURE_DEVICES[device.type]} graph capture")
        side = module_api.Stream(device)
        side.wait_stream(module_api.current_stream(device))
        with torch.inference_mode():
            with module_api.stream(side):
                for _ in range(self.WARMUP_STEPS):
                    module(*inputs)
            module_api.current_stream(device).wait_stream(side)
            self.graph = graph_class()
            with module_api.graph(self.graph):
                self.output = module(*inputs)
        module_api.synchronize(device)
        self.capture_details = {"mode": "device-graph", "graph": f"torch.{device.type}.{graph_class.__name__}",
                                "capture_warmup_steps": self.WARMUP_STEPS}

    def step(self) -> None:
        self.graph.replay()  # inputs and outputs live in the captured buffers

    def close(self) -> None:
        self.graph = None
        super().close()


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
                             if t.is_floating_point() else t.detach().cpu().numpy(),
                             from_numpy=lambda array: torch.from_numpy(array).to(device))

    def step(self) -> None:
        GenerativePrepared.step(self)

    def outputs(self):
        return GenerativePrepared.outputs(self)
