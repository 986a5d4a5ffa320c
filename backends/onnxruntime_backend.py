"""ONNX Runtime backend: the workload exported to ONNX, run by one execution provider.

Each execution provider is a device (``CPUExecutionProvider``, ...). After the
session is created the backend checks which providers it really uses, so a
silent fallback to the CPU can never be reported as accelerator numbers.
"""

from __future__ import annotations

from harness.errors import Unsupported
from harness.interface import Availability, DeviceInfo, Prepared
from backends._host import cpu_device_facts

#: Providers this backend knows how to drive; others in the build are not listed.
SUPPORTED_PROVIDERS = ("CPUExecutionProvider",)

#: dtypes a provider cannot execute at all (ONNX Runtime's CPU kernels have no
#: bfloat16 MatMul/Gemm), refused before a costly export.
UNSUPPORTED_DTYPES = {"CPUExecutionProvider": {"bfloat16": "no bfloat16 MatMul/Gemm kernels"}}


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def probe(self) -> Availability:
        try:
            import onnxruntime
        except Exception as exc:  # noqa: BLE001
            return Availability.no(f"onnxruntime is not importable ({type(exc).__name__}: {exc})")
        for dependency in ("onnx", "torch"):
            try:
                __import__(dependency)
            except Exception as exc:  # noqa: BLE001
                return Availability.no(
                    f"{dependency} is needed to export workloads but is not importable ({exc})",
                    version=onnxruntime.__version__,
                )
        return Availability.yes(version=onnxruntime.__version__)

    def devices(self) -> list[DeviceInfo]:
        import onnxruntime

        available = onnxruntime.get_available_providers()
        devices = []
        for provider in SUPPORTED_PROVIDERS:
            facts = cpu_device_facts() if provider == "CPUExecutionProvider" else {}
            devices.append(
                DeviceInfo(
                    backend=self.name,
                    device=provider,
                    runtime_version=onnxruntime.__version__,
                    available=provider in available,
                    reason=None if provider in available else
                    f"not in this onnxruntime build (it has: {', '.join(available)})",
                    **facts,
                )
            )
        return devices

    def prepare(self, workload, spec) -> Prepared:
        import onnxruntime

        from backends.onnx_export import export_onnx

        provider = spec.device
        if provider not in onnxruntime.get_available_providers():
            raise Unsupported(f"{provider} is not available in this onnxruntime build")
        refused = UNSUPPORTED_DTYPES.get(provider, {}).get(spec.dtype)
        if refused:
            raise Unsupported(f"{provider} cannot run {spec.dtype}: {refused}")

        exported = export_onnx(workload, spec.dtype, spec.batch_size)
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        if spec.threads:
            options.intra_op_num_threads = spec.threads
            options.inter_op_num_threads = 1
        try:
            session = onnxruntime.InferenceSession(
                str(exported.path), sess_options=options, providers=[provider]
            )
        except Exception as exc:
            if "NOT_IMPLEMENTED" in str(exc):
                raise Unsupported(f"{provider} at {spec.dtype}: {exc}") from exc
            raise
        used = session.get_providers()
        if used[0] != provider:
            raise RuntimeError(f"session fell back to {used} instead of {provider}")
        inputs = workload.example_inputs(spec.batch_size, spec.dtype)
        feeds = {
            meta.name: tensor.numpy()
            for meta, tensor in zip(session.get_inputs(), inputs, strict=True)
        }
        prepared = OrtPrepared(session, feeds)
        prepared.details = {
            "model_path": str(exported.path),
            "export_cache_hit": exported.cache_hit,
            "exporter": exported.exporter,
            "export_s": exported.export_s,
            "providers": used,
            "intra_op_num_threads": options.intra_op_num_threads,
            "graph_optimization_level": "ORT_ENABLE_ALL",
        }
        return prepared


class OrtPrepared(Prepared):
    def __init__(self, session, feeds) -> None:
        super().__init__()
        self.session, self.feeds = session, feeds
        self.output = None

    def step(self) -> None:
        # run() returns after the provider finishes: host-synchronous, no extra sync needed.
        self.output = self.session.run(None, self.feeds)

    def outputs(self):
        return None if self.output is None else [array.astype("float32") for array in self.output]

    def close(self) -> None:
        self.session = self.feeds = self.output = None
