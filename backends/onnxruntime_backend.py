"""ONNX Runtime backend: the workload exported to ONNX, run by one execution provider.

Each execution provider is a device (``CPUExecutionProvider``, ...). After the
session is created the backend checks which providers it really uses, so a
silent fallback to the CPU can never be reported as accelerator numbers.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from harness.errors import Unsupported
from harness.generation import GenerativePrepared
from harness.interface import Availability, DeviceInfo, Prepared
from backends._host import cpu_device_facts

#: Providers this backend lists, and the pip package that brings each. The
#: onnxruntime packages all install the same ``onnxruntime`` module, so one
#: environment holds exactly one of them.
PROVIDER_PACKAGES = {
    "CPUExecutionProvider": "onnxruntime",
    "CUDAExecutionProvider": "onnxruntime-gpu",
    "TensorrtExecutionProvider": "onnxruntime-gpu (plus the TensorRT libraries)",
    "CANNExecutionProvider": "onnxruntime-cann (plus the Ascend CANN toolkit)",
    "OpenVINOExecutionProvider": "onnxruntime-openvino",
    "MIGraphXExecutionProvider": "an AMD ROCm build of onnxruntime",
}
SUPPORTED_PROVIDERS = tuple(PROVIDER_PACKAGES)

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
                    f"not in this onnxruntime build: {provider} comes with {PROVIDER_PACKAGES[provider]} "
                    f"(installed build has: {', '.join(p for p in available if p != 'AzureExecutionProvider')})",
                    **facts,
                )
            )
        return devices

    def prepare(self, workload, spec) -> Prepared:
        import onnxruntime

        from backends.onnx_export import export_generative, export_onnx

        provider = spec.device
        if provider not in onnxruntime.get_available_providers():
            raise Unsupported(f"{provider} is not available in this onnxruntime build")
        refused = UNSUPPORTED_DTYPES.get(provider, {}).get(spec.dtype)
        if refused:
            raise Unsupported(f"{provider} cannot run {spec.dtype}: {refused}")

        # int8: export float32, then quantize the weights with quantize_dynamic.
        export_dtype = "float32" if spec.dtype == "int8" else spec.dtype
        generative = getattr(workload, "generative", False)
        if getattr(workload, "onnx_only", False):
            from backends.onnx_export import ExportedModel

            exported = [ExportedModel(workload.path, True, "user-supplied ONNX file", 0.0, "")]
        elif generative:
            exported = list(export_generative(workload, export_dtype))
        else:
            exported = [export_onnx(workload, export_dtype, spec.batch_size)]
        paths = [e.path for e in exported]
        if spec.dtype == "int8":
            paths = [quantize_int8(path, workload.name) for path in paths]
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        if spec.threads:
            options.intra_op_num_threads = spec.threads
            options.inter_op_num_threads = 1
        try:
            sessions = [onnxruntime.InferenceSession(str(path), sess_options=options, providers=[provider])
                        for path in paths]
        except Exception as exc:
            if "NOT_IMPLEMENTED" in str(exc):
                raise Unsupported(f"{provider} at {spec.dtype}: {exc}") from exc
            raise
        used = sessions[0].get_providers()
        if used[0] != provider:
            raise RuntimeError(f"session fell back to {used} instead of {provider}")
        inputs = workload.example_inputs(spec.batch_size, export_dtype)
        if getattr(workload, "onnx_only", False):
            names = [meta.name for meta in sessions[0].get_inputs()]
            feeds = {name: tensor.numpy() for name, tensor in zip(workload.input_names, inputs)}
            prepared = OrtPrepared(sessions[0], {name: feeds[name] for name in names})
        elif generative:
            prepared = OrtGenerativePrepared(sessions, inputs, workload.values["new_tokens"])
        else:
            feeds = {
                meta.name: tensor.numpy()
                for meta, tensor in zip(sessions[0].get_inputs(), inputs, strict=True)
            }
            prepared = OrtPrepared(sessions[0], feeds)
        prepared.details = {
            "model_paths": [str(path) for path in paths],
            "export_cache_hit": all(e.cache_hit for e in exported),
            "exporter": exported[0].exporter,
            "export_s": sum(e.export_s for e in exported),
            "providers": used,
            "intra_op_num_threads": options.intra_op_num_threads,
            "graph_optimization_level": "ORT_ENABLE_ALL",
            **({"quantization": "onnxruntime.quantization.quantize_dynamic(QInt8)"} if spec.dtype == "int8" else {}),
        }
        return prepared


def quantize_int8(path, workload_name: str):
    """Dynamic int8 quantization of an exported model's weights, cached beside it.

    Refuses (Unsupported) when the graph has no weights to quantize, e.g. a
    matmul of two activations, instead of running float32 under an int8 label.
    """
    from pathlib import Path

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from backends.onnx_export import cache_dir

    source = Path(path)
    stat = source.stat()
    key = hashlib.blake2b(f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode(), digest_size=12)
    folder = cache_dir() / "onnx-int8" / key.hexdigest()  # never written beside a user's own file
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "model.int8.onnx"
    if not target.exists():
        staging = folder / f".model.int8.{os.getpid()}.onnx"
        quantize_dynamic(str(source), str(staging), weight_type=QuantType.QInt8, use_external_data_format=True)
        # The external weight file keeps its staging name; the model refers to it by that name.
        os.replace(staging, target)
    graph = onnx.load(str(target), load_external_data=False).graph
    quantized = [n for n in graph.node if n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul",
                                                          "DynamicQuantizeLinear", "MatMulIntegerToFloat")]
    if not quantized:
        raise Unsupported(f"quantize_dynamic found no weights to quantize in {workload_name!r}; "
                          "it would run in float32")
    return target


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


class OrtGenerativePrepared(GenerativePrepared, OrtPrepared):
    """Greedy generation with separate prefill and decode-step sessions; the KV cache
    stays in numpy arrays that ONNX Runtime reads in place."""

    def __init__(self, sessions, inputs, new_tokens: int) -> None:
        prefill_session, decode_session = sessions
        OrtPrepared.__init__(self, prefill_session, {})
        self.decode_session = decode_session
        prompt, past_key, past_value = (t.numpy() for t in inputs)

        def prefill(ids, key, value):
            return prefill_session.run(None, {"input_ids": ids})

        def decode(ids, key, value):
            return decode_session.run(None, {"input_ids": ids, "past_key": key, "past_value": value})

        self.init_generation(prefill, decode, prompt, past_key, past_value, new_tokens,
                             concat=lambda parts: np.concatenate(parts, axis=1), to_numpy=np.asarray)

    def step(self) -> None:
        GenerativePrepared.step(self)

    def outputs(self):
        return GenerativePrepared.outputs(self)

    def close(self) -> None:
        OrtPrepared.close(self)
        self.decode_session = None
