"""The three built-in CPU backends, run for real on this machine."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from harness.contract.errors import Unsupported
from harness.contract.interface import Backend
from harness.engine.plugins import Registry
from harness.engine.runner import execute
from harness.engine.spec import BenchmarkSpec
from harness.tools.export import export_onnx

CPU_TARGETS = [("torch", "cpu"), ("onnxruntime", "CPUExecutionProvider"), ("openvino", "CPU")]


@pytest.fixture(scope="module")
def registry():
    return Registry()


def reference_outputs(workload, batch_size):
    module = workload.build_module("float32")
    with torch.inference_mode():
        return module(*workload.example_inputs(batch_size, "float32")).numpy()


@pytest.mark.parametrize("backend_name, device", CPU_TARGETS)
def test_backend_protocol_and_device_identity(registry, backend_name, device):
    backend = registry.backend(backend_name)
    assert isinstance(backend, Backend)
    availability = backend.probe()
    assert availability.available and availability.version
    info = next(d for d in backend.devices() if d.device == device)
    assert info.available
    assert info.vendor and info.model and info.memory_bytes > 0 and info.runtime_version


@pytest.mark.parametrize("backend_name, device", CPU_TARGETS)
@pytest.mark.parametrize("workload_name, params, batch", [("gemm", {"size": 48}, 3), ("mlp", {"hidden": 32}, 5)])
def test_backends_compute_the_same_answer_as_eager_torch(registry, backend_name, device, workload_name, params, batch):
    workload = registry.workload(workload_name, params)
    spec = BenchmarkSpec.create(backend=backend_name, device=device, workload=workload_name,
                                params=workload.values, batch_size=batch, threads=1)
    prepared = registry.backend(backend_name).prepare(workload, spec)
    try:
        prepared.step()
        prepared.synchronize()
        [output] = prepared.outputs()
    finally:
        prepared.close()
    np.testing.assert_allclose(output, reference_outputs(workload, batch), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend_name", ["torch", "onnxruntime"])
def test_a_timed_step_keeps_no_output_alive_and_parity_still_reads_the_answer(registry, backend_name):
    """The step drops its output as it ends, as torch.utils.benchmark's statement does: held
    until the next step, two output buffers stayed alive and every forward wrote into the colder
    one (gemm 1024 read 3% slower). The parity check's outputs come from one more, untimed call."""
    import gc
    import weakref

    device = dict(CPU_TARGETS)[backend_name]
    workload = registry.workload("gemm", {"size": 48})
    spec = BenchmarkSpec.create(backend=backend_name, device=device, workload="gemm", params=workload.values,
                                batch_size=2, threads=1)
    prepared = registry.backend(backend_name).prepare(workload, spec)
    produced = []
    if backend_name == "torch":  # watch the tensors the module returns (numpy arrays take no weakref)
        forward = prepared.module

        def watched(*inputs):
            out = forward(*inputs)
            produced.append(weakref.ref(out))
            return out
        prepared.module = watched
    try:
        for _ in range(3):
            prepared.step()
            prepared.synchronize()
        assert prepared.output is None  # nothing of the timed steps is held by the prepared object
        gc.collect()
        if backend_name == "torch":
            assert len(produced) == 3 and all(ref() is None for ref in produced)
        [output] = prepared.outputs()
    finally:
        prepared.close()
    np.testing.assert_allclose(output, reference_outputs(workload, 2), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend_name, device", CPU_TARGETS)
def test_execute_produces_a_measurement(registry, backend_name, device):
    spec = BenchmarkSpec.create(backend=backend_name, device=device, workload="gemm",
                                params={"size": 32}, iterations=8, warmup=1, threads=1)
    outcome = execute(spec, registry)
    assert outcome.status == "ok", outcome.reason
    assert len(outcome.measurement.latencies_ns) == 8
    assert all(v > 0 for v in outcome.measurement.latencies_ns)
    assert outcome.work_per_step == 2 * 32**3 and outcome.unit == "FLOP"
    assert outcome.device_info["device"] == device
    # telemetry: filled, with sources; energy honestly null on a VM without meters
    assert outcome.memory["host_peak_rss_bytes"] > 0 and outcome.memory["host_peak_rss_source"]
    assert outcome.memory["weight_bytes"] == 0 and outcome.memory["weight_bytes_source"].startswith("0 weights")
    if outcome.energy["joules"] is None:
        assert outcome.energy["reason"].startswith("no meter could read")
    else:
        assert outcome.energy["joules"] > 0


def test_onnxruntime_refuses_bfloat16_on_cpu(registry):
    workload = registry.workload("gemm", {"size": 8})
    spec = BenchmarkSpec.create(backend="onnxruntime", device="CPUExecutionProvider", workload="gemm",
                                dtype="bfloat16")
    with pytest.raises(Unsupported, match="bfloat16"):
        registry.backend("onnxruntime").prepare(workload, spec)


def test_onnxruntime_runs_float16(registry):
    workload = registry.workload("gemm", {"size": 16})
    spec = BenchmarkSpec.create(backend="onnxruntime", device="CPUExecutionProvider", workload="gemm",
                                dtype="float16")
    prepared = registry.backend("onnxruntime").prepare(workload, spec)
    prepared.step()
    a, b = workload.example_inputs(1, "float16")
    np.testing.assert_allclose(prepared.outputs()[0], (a.float() @ b.float()).numpy(), rtol=1e-2, atol=1e-1)
    assert prepared.details["providers"][0] == "CPUExecutionProvider"


def test_openvino_float32_is_really_float32(registry):
    """OpenVINO's CPU plugin defaults to bf16 on AVX-512 BF16 parts; float32 must pin f32."""
    workload = registry.workload("gemm", {"size": 16})
    spec = BenchmarkSpec.create(backend="openvino", device="CPU", workload="gemm", threads=1)
    prepared = registry.backend("openvino").prepare(workload, spec)
    assert prepared.details["inference_precision"] == "f32"
    assert prepared.details["inference_num_threads"] == 1


def test_openvino_lower_precisions_follow_device_capabilities(registry):
    import openvino

    capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    workload = registry.workload("gemm", {"size": 16})
    for dtype, capability, hint in (("float16", "FP16", "f16"), ("bfloat16", "BF16", "bf16")):
        spec = BenchmarkSpec.create(backend="openvino", device="CPU", workload="gemm", dtype=dtype)
        if capability in capabilities:
            prepared = registry.backend("openvino").prepare(workload, spec)
            assert prepared.details["inference_precision"] == hint
        else:
            with pytest.raises(Unsupported, match=f"cannot compute in {dtype}"):
                registry.backend("openvino").prepare(workload, spec)


def test_torch_backend_applies_thread_setting(registry):
    previous = torch.get_num_threads()
    try:
        workload = registry.workload("gemm", {"size": 8})
        spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm", threads=1)
        prepared = registry.backend("torch").prepare(workload, spec)
        assert prepared.details["threads"] == 1
    finally:
        torch.set_num_threads(previous)


def test_onnx_export_is_checked_and_cached_by_content(registry, tmp_path):
    workload = registry.workload("mlp", {"hidden": 16, "layers": 1})
    first = export_onnx(workload, "float32", 2, directory=tmp_path)
    assert not first.cache_hit and first.export_s > 0
    assert first.path.name == "model.onnx" and first.path.parent.name.startswith("mlp-float32-b2-")
    onnx.checker.check_model(str(first.path))
    again = export_onnx(workload, "float32", 2, directory=tmp_path)
    assert again.cache_hit and again.path == first.path

    other_batch = export_onnx(workload, "float32", 3, directory=tmp_path)
    assert other_batch.content_hash != first.content_hash

    class Reseeded(type(workload)):
        seed = 99  # same shapes, different weights: must not reuse the cached graph

    reseeded = Reseeded(**workload.values)
    assert export_onnx(reseeded, "float32", 2, directory=tmp_path).content_hash != first.content_hash


def test_onnx_export_cache_key_covers_the_workload_source(registry, tmp_path, monkeypatch):
    """Editing a workload's code must not reuse a graph exported from the old code."""
    import harness.tools.export

    workload = registry.workload("mlp", {"hidden": 16, "layers": 1})
    first = export_onnx(workload, "float32", 1, directory=tmp_path)
    monkeypatch.setattr(harness.tools.export, "_source_digest", lambda obj: "edited-source")
    assert export_onnx(workload, "float32", 1, directory=tmp_path).content_hash != first.content_hash
