"""OpenVINO backend: the workload converted with ``openvino.convert_model`` and run by
the native OpenVINO runtime on one of its devices (``CPU``, ``GPU``, ``NPU``).

Precision is OpenVINO's *inference precision* hint: the converted model keeps
float32 weights and the device computes at the requested precision. The hint
is always set explicitly, because OpenVINO's CPU plugin silently defaults to
bfloat16 on CPUs with AVX-512 BF16 or AMX; a "float32" number must be a
float32 number. The effective precision is read back into the record.
"""

from __future__ import annotations

from harness.contract.capabilities import Generative, OnnxModelFile, capability
from harness.contract.errors import Unsupported
from harness.contract.interface import Availability, DeviceInfo, Prepared
from harness.engine.generation import GenerativePrepared
from backends._host import HostEnergy, cpu_device_facts

#: bakeoff dtype -> (OpenVINO precision hint, OPTIMIZATION_CAPABILITIES entry)
PRECISIONS = {"float32": ("f32", "FP32"), "float16": ("f16", "FP16"), "bfloat16": ("bf16", "BF16")}


def _property(core, device: str, name: str):
    try:
        return core.get_property(device, name)
    except Exception:  # noqa: BLE001 - devices differ in what they expose
        return None


def _distribution_version(name: str) -> str | None:
    """``2026.4.1`` rather than the build string ``2026.4.1-22982-e213a14...``."""
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _type_name(element_type) -> str:
    """``f32`` rather than ``<Type: 'float32'>``."""
    to_string = getattr(element_type, "to_string", None)
    return to_string() if callable(to_string) else str(element_type)


def compress_int8(model, workload_name: str):
    """int8 weights through NNCF; refuses when NNCF is missing or nothing was compressed."""
    try:
        import nncf
    except ImportError:
        raise Unsupported("OpenVINO int8 needs NNCF (pip install 'bakeoff[openvino]'); "
                          "refusing rather than running float32") from None
    compressed = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    int8_constants = [op for op in compressed.get_ops() if op.get_type_name() == "Constant"
                      and op.get_output_element_type(0).get_type_name() in ("u8", "i8")]
    if not int8_constants:
        raise Unsupported(f"NNCF found no weights to compress in {workload_name!r}; it would run in float32")
    return compressed


def _precision(device: str, capabilities: list[str], facts: dict) -> dict:
    """Native dtypes from OpenVINO's own query (OPTIMIZATION_CAPABILITIES). The CPU plugin
    reports INT8 on every x86 CPU, VNNI or not, so a CPU's int8 comes from its flags."""
    from harness.hardware.precision import capability_precision

    fallback = None
    if device.startswith("CPU") and facts.get("native_dtypes") is not None:
        int8_native = "int8" in facts["native_dtypes"]
        fallback = {"int8": (int8_native, None if int8_native else facts["emulated_dtypes"].get("int8"))}
    return capability_precision(capabilities, f"OpenVINO {device} OPTIMIZATION_CAPABILITIES",
                                fallback).device_fields()


class OpenVinoBackend:
    name = "openvino"

    def probe(self) -> Availability:
        try:
            import openvino
        except Exception as exc:  # noqa: BLE001
            return Availability.no(f"openvino is not importable ({type(exc).__name__}: {exc})")
        try:
            import torch  # noqa: F401 - convert_model reads the workload's torch module
        except Exception as exc:  # noqa: BLE001
            return Availability.no(f"torch is needed to convert workloads ({exc})", openvino.__version__)
        return Availability.yes(version=_distribution_version("openvino") or openvino.__version__)

    def devices(self) -> list[DeviceInfo]:
        import openvino

        core = openvino.Core()
        devices = []
        for name in core.available_devices:
            capabilities = _property(core, name, "OPTIMIZATION_CAPABILITIES") or []
            facts = cpu_device_facts() if name.startswith("CPU") else {}
            full_name = _property(core, name, "FULL_DEVICE_NAME")
            if full_name:
                facts["model"] = str(full_name)
            facts.update(_precision(name, list(capabilities), facts))
            devices.append(
                DeviceInfo(
                    backend=self.name,
                    device=name,
                    runtime_version=openvino.get_version(),
                    extra={"capabilities": list(capabilities)},
                    **facts,
                )
            )
        return devices

    def prepare(self, workload, spec) -> Prepared:
        import openvino

        core = openvino.Core()
        # int8: float32 activations, int8 weights compressed by NNCF.
        hint, needed = PRECISIONS["float32" if spec.dtype == "int8" else spec.dtype]
        capabilities = list(_property(core, spec.device, "OPTIMIZATION_CAPABILITIES") or [])
        if needed not in capabilities:
            raise Unsupported(
                f"OpenVINO {spec.device} cannot compute in {spec.dtype} on this machine "
                f"(capabilities: {', '.join(capabilities) or 'none reported'})"
            )
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint}
        if spec.threads:
            config["INFERENCE_NUM_THREADS"] = spec.threads
        generative = capability(workload, Generative)
        onnx_file = capability(workload, OnnxModelFile)
        if generative is not None:
            # Dynamic-shape prefill and decode graphs: read the (cached) ONNX exports.
            from harness.tools.export import export_generative

            graphs = export_generative(workload, "float32")
            models = [core.read_model(str(g.path)) for g in graphs]
            if spec.dtype == "int8":
                models = [compress_int8(model, workload.name) for model in models]
            compiled = [core.compile_model(model, spec.device, config) for model in models]
            inputs = workload.example_inputs(spec.batch_size, "float32")
            prepared = OpenVinoGenerativePrepared(compiled, inputs, generative.new_tokens)
            converter = "openvino.Core.read_model(ONNX prefill + decode graphs)"
        else:
            inputs = workload.example_inputs(spec.batch_size, "float32")
            if onnx_file is not None:
                model = core.read_model(str(onnx_file.onnx_path))
                converter = "openvino.Core.read_model(user-supplied ONNX file)"
            else:
                model, cache_hit = converted_model(openvino, core, workload, inputs)
                converter = "openvino.convert_model(torch.nn.Module)" + (" (cached IR)" if cache_hit else "")
            if spec.dtype == "int8":
                model = compress_int8(model, workload.name)
            compiled = [core.compile_model(model, spec.device, config)]
            request = compiled[0].create_infer_request()
            by_name = dict(zip(workload.input_names, inputs))
            for index, port in enumerate(compiled[0].inputs):
                tensor = by_name.get(port.get_any_name(), inputs[index]) if port.get_names() else inputs[index]
                request.set_input_tensor(index, openvino.Tensor(tensor.numpy()))
            prepared = OpenVinoPrepared(request)
        prepared.details = {
            "converter": converter,
            "inference_precision": _type_name(compiled[0].get_property("INFERENCE_PRECISION_HINT")),
            "inference_num_threads": int(compiled[0].get_property("INFERENCE_NUM_THREADS")),
            "performance_hint": str(compiled[0].get_property("PERFORMANCE_HINT")),
            **({"quantization": "nncf.compress_weights(INT8_ASYM)"} if spec.dtype == "int8" else {}),
        }
        return prepared


def converted_model(openvino, core, workload, inputs):
    """The workload's module converted to OpenVINO IR, cached on disk by content hash.

    Conversion traces the module (seconds for a CNN or an encoder), and each
    benchmark runs in a fresh worker, so the IR is saved once, uncompressed
    (``compress_to_fp16=False``: the weights stay float32), and read back by
    later benchmarks. The key covers the workload's code and parameters, every
    weight's bytes, the input shapes, torch's and OpenVINO's versions.
    """
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from harness.files.atomic import fsync_dir, fsync_tree
    from harness.tools.export import cache_dir, content_hash, workload_identity

    module = workload.build_module("float32")
    identity = {**workload_identity(workload, "float32"), "converter": "openvino.convert_model",
                "openvino": openvino.__version__}
    root = cache_dir() / "openvino-ir"
    folder = root / content_hash(identity, module, inputs)
    if (folder / "model.xml").exists():
        return core.read_model(str(folder / "model.xml")), True
    model = openvino.convert_model(module, example_input=inputs)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        openvino.save_model(model, str(staging / "model.xml"), compress_to_fp16=False)
        fsync_tree(staging)  # save_model does not fsync: the folder renamed into place must be complete
        os.replace(staging, folder)
    except OSError:  # another worker cached it first; keep theirs
        shutil.rmtree(staging, ignore_errors=True)
    fsync_dir(root)  # and the rename itself durable
    return model, False


class OpenVinoPrepared(HostEnergy, Prepared):
    def __init__(self, request) -> None:
        super().__init__()
        self.request = request

    def step(self) -> None:
        # infer() is synchronous: it returns when the device has finished.
        self.request.infer()

    def outputs(self):
        return [
            self.request.get_output_tensor(i).data.astype("float32").copy()
            for i in range(len(self.request.model_outputs))
        ]

    def close(self) -> None:
        self.request = None


class OpenVinoGenerativePrepared(HostEnergy, GenerativePrepared, Prepared):
    """Greedy generation on compiled prefill and decode graphs.

    Decode alternates between two infer requests: each step reads the KV cache
    from the *other* request's output buffers, which stay untouched until that
    request runs again, so the cache is never copied and never aliased.
    """

    def __init__(self, compiled, inputs, new_tokens: int) -> None:
        import numpy as np

        Prepared.__init__(self)
        prefill_model, decode_model = compiled
        prefill_request = prefill_model.create_infer_request()
        decode_requests = [decode_model.create_infer_request(), decode_model.create_infer_request()]
        turn = [0]
        prompt, past_key, past_value = (t.numpy() for t in inputs)

        def prefill(ids, key, value):
            return prefill_request.infer({"input_ids": ids}, share_inputs=True).to_tuple()

        def decode(ids, key, value):
            request = decode_requests[turn[0]]
            turn[0] ^= 1
            return request.infer({"input_ids": ids, "past_key": key, "past_value": value},
                                 share_inputs=True).to_tuple()

        self.requests = [prefill_request, *decode_requests]
        self.init_generation(prefill, decode, prompt, past_key, past_value, new_tokens,
                             concat=lambda parts: np.concatenate([np.array(p) for p in parts], axis=1),
                             to_numpy=lambda a: np.array(a, copy=True))

    def close(self) -> None:
        self.requests = None
