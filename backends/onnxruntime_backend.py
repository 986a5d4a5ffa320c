"""ONNX Runtime backend: the workload exported to ONNX, run by one execution provider.

Each execution provider is a device (``CPUExecutionProvider``, ...). After the
session is created the backend checks which providers it really uses, so a
silent fallback to the CPU can never be reported as accelerator numbers.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from harness.contract.capabilities import Generative, OnnxModelFile, capability
from harness.contract.errors import Unsupported
from harness.contract.interface import Availability, DeviceInfo, Prepared
from harness.contract.options import Option
from harness.engine.generation import GenerativePrepared
from backends._host import cpu_device_facts, device_meters

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

#: Provider-option keys each provider's parser accepts (ONNX Runtime rejects an
#: unknown key with "Unknown provider option" on some providers and silently
#: ignores it on others, so bakeoff checks before anything runs). Sources:
#: cuda_provider_options.h, tensorrt_execution_provider_info.cc,
#: cann_execution_provider_info.cc, the OpenVINO EP docs; see
#: ../shared/research/backends.md section 2.
PROVIDER_OPTION_KEYS: dict[str, frozenset[str]] = {
    "CPUExecutionProvider": frozenset(),
    "CUDAExecutionProvider": frozenset({
        "device_id", "gpu_mem_limit", "arena_extend_strategy", "cudnn_conv_algo_search",
        "do_copy_in_default_stream", "cudnn_conv_use_max_workspace", "cudnn_conv1d_pad_to_nc1d",
        "enable_cuda_graph", "enable_skip_layer_norm_strict_mode", "prefer_nhwc", "use_tf32",
        "use_ep_level_unified_stream", "gpu_external_alloc", "gpu_external_free", "gpu_external_empty_cache",
        "tunable_op_enable", "tunable_op_tuning_enable", "tunable_op_max_tuning_duration_ms",
        "sdpa_kernel", "fuse_conv_bias",
    }),
    "TensorrtExecutionProvider": frozenset({
        "device_id", "trt_max_workspace_size", "trt_fp16_enable", "trt_bf16_enable", "trt_int8_enable",
        "trt_int8_calibration_table_name", "trt_int8_use_native_calibration_table", "trt_engine_cache_enable",
        "trt_engine_cache_path", "trt_engine_cache_prefix", "trt_timing_cache_enable", "trt_timing_cache_path",
        "trt_force_sequential_engine_build", "trt_max_partition_iterations", "trt_min_subgraph_size",
        "trt_dump_subgraphs", "trt_layer_norm_fp32_fallback", "trt_builder_optimization_level",
        "trt_auxiliary_streams", "trt_detailed_build_log", "trt_cuda_graph_enable",
        "trt_profile_min_shapes", "trt_profile_max_shapes", "trt_profile_opt_shapes",
        "trt_context_memory_sharing_enable", "trt_sparsity_enable", "trt_dla_enable", "trt_dla_core",
    }),
    "CANNExecutionProvider": frozenset({
        "device_id", "npu_mem_limit", "arena_extend_strategy", "enable_cann_graph", "enable_cann_subgraph",
        "dump_graphs", "dump_om_model", "op_select_impl_mode", "optypelist_for_implmode",
        # precision_mode / precision_mode_v2 depend on the version: see cann_precision_key().
    }),
    "OpenVINOExecutionProvider": frozenset({
        "device_type", "precision", "num_of_threads", "cache_dir", "num_streams", "enable_opencl_throttling",
        "enable_qdq_optimizer", "disable_dynamic_shapes", "load_config", "model_priority",
    }),
    "MIGraphXExecutionProvider": frozenset({
        "device_id", "migraphx_fp16_enable", "migraphx_int8_enable", "migraphx_mem_limit",
        "migraphx_exhaustive_tune", "migraphx_arena_extend_strategy",
    }),
}
#: The last onnxruntime-cann release whose CANN parser reads ``precision_mode``;
#: later sources read ``precision_mode_v2`` (microsoft/onnxruntime#27970).
CANN_PRECISION_MODE_LAST = (1, 24)
#: Providers whose memory IOBinding can address, by OrtValue device name.
#: The device type a provider's work lands on, for its energy meters (NVML, npu-smi; RAPL for the rest).
PHYSICAL_DEVICE_TYPES = {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "cuda",
                         "CANNExecutionProvider": "npu"}
IOBINDING_DEVICES = {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda",
                     "TensorrtExecutionProvider": "cuda", "CANNExecutionProvider": "cann"}
OPTIMIZATION_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
                       "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def cann_precision_key(version: str) -> str:
    """``precision_mode`` up to onnxruntime-cann 1.24, ``precision_mode_v2`` after."""
    return "precision_mode" if _version_tuple(version) <= CANN_PRECISION_MODE_LAST else "precision_mode_v2"


def accepted_provider_options(provider: str, version: str) -> frozenset[str] | None:
    """The keys ``provider`` accepts in onnxruntime ``version``; ``None`` when unknown."""
    keys = PROVIDER_OPTION_KEYS.get(provider)
    if keys is None:
        return None
    if provider == "CANNExecutionProvider":
        keys = keys | {cann_precision_key(version)}
    return keys


def check_provider_options(provider: str, version: str, options) -> None:
    """``ValueError`` naming the key that ``provider`` in onnxruntime ``version`` does not accept."""
    accepted = accepted_provider_options(provider, version)
    if accepted is None:
        return
    for key in options:
        if key in accepted:
            continue
        if provider == "CPUExecutionProvider":
            raise ValueError(f"provider_options.{key}: CPUExecutionProvider takes no provider options "
                             "(threads come from --threads; session settings from session_config)")
        hint = ""
        if key in ("precision_mode", "precision_mode_v2"):
            hint = (f"; onnxruntime {version} reads {cann_precision_key(version)!r} "
                    f"(precision_mode up to 1.24, precision_mode_v2 after)")
        raise ValueError(f"provider_options.{key}: not an option of {provider} in onnxruntime {version} "
                         f"(accepted: {', '.join(sorted(accepted))}){hint}")


def check_options_took_effect(provider: str, requested, effective) -> None:
    """After session creation: every requested key must appear in the provider's
    effective options (``session.get_provider_options()``). Some providers drop
    unknown keys silently, which would measure a configuration nobody asked for.
    Providers that report no options at all cannot be checked this way."""
    if not effective:
        return
    ignored = sorted(k for k in requested if k not in effective)
    if ignored:
        raise RuntimeError(f"{provider} ignored provider option(s) {', '.join(ignored)} "
                           f"(effective options: {', '.join(sorted(effective))})")


#: dtypes a provider cannot execute at all (ONNX Runtime's CPU kernels have no
#: bfloat16 MatMul/Gemm), refused before a costly export.
UNSUPPORTED_DTYPES = {"CPUExecutionProvider": {"bfloat16": "no bfloat16 MatMul/Gemm kernels"}}


class OnnxRuntimeBackend:
    name = "onnxruntime"
    OPTIONS = {
        "provider_options": Option("table", {}, (), "the execution provider's options (e.g. device_id, "
                                   "enable_cuda_graph), checked against the installed version's keys"),
        "session_config": Option("table", {}, (), "SessionOptions.add_session_config_entry pairs, e.g. "
                                 "\"session.intra_op.allow_spinning\" = \"0\""),
        "graph_optimization_level": Option("str", "all", tuple(OPTIMIZATION_LEVELS),
                                           "ONNX Runtime graph optimizations"),
        "io_binding": Option("bool", None, (), "bind inputs and outputs to device memory (default: on for "
                             "CUDA, TensorRT and CANN, off for the CPU)"),
    }

    def ray_requirements(self, device: str) -> dict | None:
        """Fleet resources per provider: GPU providers need a Ray ``GPU``, CANN an ``NPU``."""
        if device in ("CUDAExecutionProvider", "TensorrtExecutionProvider", "MIGraphXExecutionProvider"):
            return {"num_gpus": 1}
        if device == "CANNExecutionProvider":
            return {"resources": {"NPU": 1}}
        return None

    def check_options(self, device: str, options) -> None:
        import onnxruntime

        check_provider_options(device, onnxruntime.__version__, options.get("provider_options", {}))
        for key, value in options.get("session_config", {}).items():
            if not isinstance(value, str):
                raise ValueError(f"session_config.{key} = {value!r}: session config values are strings")
        if options.get("io_binding") and device not in IOBINDING_DEVICES:
            raise ValueError(f"io_binding=true: bakeoff binds memory only for "
                             f"{', '.join(IOBINDING_DEVICES)}, not {device}")

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

        from harness.tools.export import export_generative, export_onnx

        provider = spec.device
        if provider not in onnxruntime.get_available_providers():
            raise Unsupported(f"{provider} is not available in this onnxruntime build")
        refused = UNSUPPORTED_DTYPES.get(provider, {}).get(spec.dtype)
        if refused:
            raise Unsupported(f"{provider} cannot run {spec.dtype}: {refused}")

        # int8: export float32, then quantize the weights with quantize_dynamic.
        export_dtype = "float32" if spec.dtype == "int8" else spec.dtype
        generative = capability(workload, Generative)
        onnx_file = capability(workload, OnnxModelFile)
        if onnx_file is not None:
            from harness.tools.export import ExportedModel

            exported = [ExportedModel(onnx_file.onnx_path, True, "user-supplied ONNX file", 0.0, "")]
        elif generative is not None:
            exported = list(export_generative(workload, export_dtype))
        else:
            exported = [export_onnx(workload, export_dtype, spec.batch_size)]
        paths = [e.path for e in exported]
        if spec.dtype == "int8":
            paths = [quantize_int8(path, workload.name) for path in paths]
        backend_options = spec.options_dict
        # ONNX Runtime parses every provider option from a string; bools as 0/1.
        provider_options = {k: str(int(v)) if isinstance(v, bool) else str(v)
                            for k, v in backend_options.get("provider_options", {}).items()}
        level = OPTIMIZATION_LEVELS[backend_options.get("graph_optimization_level", "all")]
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = getattr(onnxruntime.GraphOptimizationLevel, level)
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        for key, value in backend_options.get("session_config", {}).items():
            options.add_session_config_entry(key, value)
        if spec.threads:
            options.intra_op_num_threads = spec.threads
            options.inter_op_num_threads = 1
        try:
            sessions = [onnxruntime.InferenceSession(str(path), sess_options=options,
                                                     providers=[(provider, provider_options)])
                        for path in paths]
        except Exception as exc:
            if "NOT_IMPLEMENTED" in str(exc):
                raise Unsupported(f"{provider} at {spec.dtype}: {exc}") from exc
            raise
        used = sessions[0].get_providers()
        if used[0] != provider:
            raise RuntimeError(f"session fell back to {used} instead of {provider}")
        effective = sessions[0].get_provider_options().get(provider, {})
        check_options_took_effect(provider, provider_options, effective)
        bind_device = IOBINDING_DEVICES.get(provider)
        io_binding = backend_options.get("io_binding")
        if io_binding is None:
            io_binding = bind_device not in (None, "cpu")
        device_id = int(provider_options.get("device_id", 0))
        inputs = workload.example_inputs(spec.batch_size, export_dtype)
        if onnx_file is not None:
            names = [meta.name for meta in sessions[0].get_inputs()]
            feeds = {name: tensor.numpy() for name, tensor in zip(workload.input_names, inputs)}
            feeds = {name: feeds[name] for name in names}
        elif generative is not None:
            binding = (bind_device, device_id) if io_binding else None
            prepared = OrtGenerativePrepared(sessions, inputs, generative.new_tokens, binding)
        else:
            feeds = {
                meta.name: tensor.numpy()
                for meta, tensor in zip(sessions[0].get_inputs(), inputs, strict=True)
            }
        if generative is None:
            prepared = (OrtBoundPrepared(onnxruntime, sessions[0], feeds, bind_device, device_id)
                        if io_binding else OrtPrepared(sessions[0], feeds))
        prepared.meters = tuple(device_meters(PHYSICAL_DEVICE_TYPES.get(provider, "cpu"), device_id))
        prepared.details = {
            "model_paths": [str(path) for path in paths],
            "export_cache_hit": all(e.cache_hit for e in exported),
            "exporter": exported[0].exporter,
            "export_s": sum(e.export_s for e in exported),
            "providers": used,
            "provider_options": effective,
            "io_binding": f"{bind_device}:{device_id}" if io_binding else False,
            "intra_op_num_threads": options.intra_op_num_threads,
            "graph_optimization_level": level,
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

    from harness.files.atomic import fsync_dir, fsync_tree
    from harness.tools.export import cache_dir

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
        # quantize_dynamic does not fsync: the model and its weight file must be complete before the rename.
        for written in (staging, staging.with_name(staging.name + ".data")):
            if written.exists():
                fsync_tree(written)
        os.replace(staging, target)
        fsync_dir(folder)
    graph = onnx.load(str(target), load_external_data=False).graph
    quantized = [n for n in graph.node if n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul",
                                                          "DynamicQuantizeLinear", "MatMulIntegerToFloat")]
    if not quantized:
        raise Unsupported(f"quantize_dynamic found no weights to quantize in {workload_name!r}; "
                          "it would run in float32")
    return target


class OrtPrepared(Prepared):
    #: The meters that see the provider's device, set by ``prepare`` (capability EnergyMetered).
    meters: tuple = ()

    def __init__(self, session, feeds) -> None:
        super().__init__()
        self.session, self.feeds = session, feeds
        self.output = None

    def step(self) -> None:
        # run() returns after the provider finishes: host-synchronous, no extra sync needed. Its
        # arrays are dropped as the step ends (as the torch backend's are): held until the next
        # step, they would keep two sets of output buffers alive in the timed loop.
        self.session.run(None, self.feeds)

    def outputs(self):
        """The outputs for the parity check: one more run, after the timed loop."""
        if self.output is None:
            self.output = self.session.run(None, self.feeds)
        return [array.astype("float32") for array in self.output]

    def energy_meters(self):
        return list(self.meters)

    def close(self) -> None:
        self.session = self.feeds = self.output = None


class OrtBoundPrepared(OrtPrepared):
    """IOBinding: inputs are copied to the device once, in prepare, and outputs stay
    there between steps, so the timed region holds no host-device copies."""

    def __init__(self, ort, session, feeds, device_type: str, device_id: int) -> None:
        super().__init__(session, feeds)
        self.binding = session.io_binding()
        # Keep the device copies alive for as long as the binding refers to them.
        self.device_inputs = {name: ort.OrtValue.ortvalue_from_numpy(array, device_type, device_id)
                              for name, array in feeds.items()}
        for name, value in self.device_inputs.items():
            self.binding.bind_ortvalue_input(name, value)
        for meta in session.get_outputs():
            self.binding.bind_output(meta.name, device_type, device_id)
        self.stepped = False

    def step(self) -> None:
        self.session.run_with_iobinding(self.binding)
        self.stepped = True

    def synchronize(self) -> None:
        self.binding.synchronize_outputs()

    def outputs(self):
        if not self.stepped:
            return None
        return [array.astype("float32") for array in self.binding.copy_outputs_to_cpu()]

    def close(self) -> None:
        self.binding = self.device_inputs = None
        super().close()


class OrtGenerativePrepared(GenerativePrepared, OrtPrepared):
    """Greedy generation with separate prefill and decode-step sessions.

    Without a binding the KV cache lives in numpy arrays that ONNX Runtime reads
    in place (right for the CPU). With ``binding=(device_type, device_id)`` the
    cache stays in device memory from step to step; only the generated token
    (a few bytes, which a real serving loop also reads to check for EOS) and the
    prefill logits (for parity) come back to the host.
    """

    def __init__(self, sessions, inputs, new_tokens: int, binding: tuple[str, int] | None = None) -> None:
        prefill_session, decode_session = sessions
        OrtPrepared.__init__(self, prefill_session, {})
        self.decode_session = decode_session
        prompt, past_key, past_value = (t.numpy() for t in inputs)

        if binding is None:
            def prefill(ids, key, value):
                return prefill_session.run(None, {"input_ids": ids})

            def decode(ids, key, value):
                return decode_session.run(None, {"input_ids": ids, "past_key": key, "past_value": value})
        else:
            device_type, device_id = binding

            def bound_run(session, ids, key, value, logits_on_host: bool):
                io = session.io_binding()
                io.bind_cpu_input("input_ids", np.ascontiguousarray(ids))
                if key is not None:
                    io.bind_ortvalue_input("past_key", key)
                    io.bind_ortvalue_input("past_value", value)
                io.bind_output("next_token", "cpu")
                io.bind_output("logits", "cpu" if logits_on_host else device_type, device_id)
                io.bind_output("present_key", device_type, device_id)
                io.bind_output("present_value", device_type, device_id)
                session.run_with_iobinding(io)
                token, logits, present_key, present_value = io.get_outputs()
                return token.numpy(), logits.numpy() if logits_on_host else logits, present_key, present_value

            def prefill(ids, key, value):
                return bound_run(prefill_session, ids, None, None, logits_on_host=True)

            def decode(ids, key, value):
                return bound_run(decode_session, ids, key, value, logits_on_host=False)

        self.init_generation(prefill, decode, prompt, past_key, past_value, new_tokens,
                             concat=lambda parts: np.concatenate(parts, axis=1), to_numpy=np.asarray)

    def step(self) -> None:
        GenerativePrepared.step(self)

    def outputs(self):
        return GenerativePrepared.outputs(self)

    def close(self) -> None:
        OrtPrepared.close(self)
        self.decode_session = None
