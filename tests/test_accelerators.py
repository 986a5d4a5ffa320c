"""Accelerator probing and provider selection, tested without the hardware.

Controlled environments only: fake torch objects, environment variables, fake
importable packages in a temp dir, and subprocesses with modules that raise.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from backends.torch_devices import probe_all, probe_cuda, probe_mps, probe_npu, probe_xpu
from harness.engine.plugins import Registry
from harness.engine.runner import execute
from harness.engine.spec import BenchmarkSpec

REPO = Path(__file__).resolve().parent.parent


def fake_torch(cuda=None, hip=None, cuda_available=False, count=0, npu=None, xpu=None, mps=None):
    properties = lambda i: SimpleNamespace(name=f"Fake GPU {i}", total_memory=80 << 30)  # noqa: E731
    return SimpleNamespace(
        version=SimpleNamespace(cuda=cuda, hip=hip),
        cuda=SimpleNamespace(is_available=lambda: cuda_available, device_count=lambda: count,
                             get_device_properties=properties),
        npu=npu, xpu=xpu, backends=SimpleNamespace(mps=mps),
    )


def test_cuda_reasons(monkeypatch):
    assert probe_cuda(fake_torch()).reason.startswith("torch is a CPU build")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert probe_cuda(fake_torch(cuda="12.4")).reason == "no device visible to the CUDA 12.4 build (CUDA_VISIBLE_DEVICES='')"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert probe_cuda(fake_torch(hip="6.2")).reason == "no device visible to the ROCm 6.2 build"
    found = probe_cuda(fake_torch(cuda="12.4", cuda_available=True, count=2))
    assert found.reason is None and [d["device"] for d in found.devices] == ["cuda:0", "cuda:1"]
    assert found.devices[1]["model"] == "Fake GPU 1" and found.devices[0]["runtime_version"] == "CUDA 12.4"


def test_npu_reasons_without_importing_anything():
    assert probe_npu(fake_torch(), find_spec=lambda name: None).reason == "torch_npu not installed"
    cuda_build = probe_npu(fake_torch(cuda="12.4"), find_spec=lambda name: object())
    assert cuda_build.reason == "torch is a CUDA build; torch_npu needs the CPU build"
    no_device = probe_npu(fake_torch(npu=SimpleNamespace(is_available=lambda: False)),
                          find_spec=lambda name: object(), import_module=lambda name: None)
    assert no_device.reason.startswith("no device visible")
    present = probe_npu(fake_torch(npu=SimpleNamespace(is_available=lambda: True, device_count=lambda: 1,
                                                       get_device_properties=lambda i: SimpleNamespace(
                                                           name="Ascend910B3", total_memory=64 << 30))),
                        find_spec=lambda name: object(), import_module=lambda name: None)
    assert present.devices == [{"device": "npu:0", "model": "Ascend910B3", "memory_bytes": 64 << 30}]


def run_probe_with_fake_torch_npu(tmp_path: Path, body: str) -> str:
    """Install a fake ``torch_npu`` package in a temp dir and probe in a fresh interpreter."""
    package = tmp_path / "torch_npu"
    package.mkdir()
    (package / "__init__.py").write_text(body)
    code = ("from backends.torch_devices import import_torch, probe_npu\n"
            "print(probe_npu(import_torch()).reason)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO,
                            env={**__import__("os").environ, "PYTHONPATH": f"{tmp_path}:{REPO}"})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_broken_cann_install_gives_the_set_env_reason(tmp_path):
    reason = run_probe_with_fake_torch_npu(tmp_path, (
        'raise ImportError("libhccl.so: cannot open shared object file: No such file or directory. '
        'Please check that the cann package is installed. Please run \'source set_env.sh\'")\n'))
    assert reason.startswith("CANN toolkit not found: source set_env.sh")


def test_torch_npu_refusing_a_second_accelerator(tmp_path):
    reason = run_probe_with_fake_torch_npu(tmp_path, (
        'raise RuntimeError("Two accelerators cannot be used at the same time in PyTorch: npu and cuda")\n'))
    assert reason == "torch is a CUDA build; torch_npu needs the CPU build"


def test_any_other_torch_npu_failure_is_reported_not_raised(tmp_path):
    reason = run_probe_with_fake_torch_npu(tmp_path, 'raise Exception("ASCEND_HOME_PATH is set but opp is missing")\n')
    assert reason.startswith("torch_npu failed to import (Exception: ASCEND_HOME_PATH is set")


def test_xpu_and_mps_reasons():
    assert probe_xpu(fake_torch()).reason == "this torch build has no XPU support"
    assert probe_xpu(fake_torch(xpu=SimpleNamespace(is_available=lambda: False))).reason.startswith("no device visible")
    assert probe_mps(fake_torch()).reason.startswith("this torch build has no MPS support")
    built = SimpleNamespace(is_built=lambda: True, is_available=lambda: False)
    assert probe_mps(fake_torch(mps=built)).reason.startswith("no device visible")


def test_one_broken_probe_never_hides_the_others():
    torch = fake_torch(cuda="12.4", cuda_available=True, count=1)
    torch.xpu = SimpleNamespace(is_available=lambda: (_ for _ in ()).throw(RuntimeError("driver crashed")))
    results = {r.kind: r for r in probe_all(torch)}
    assert results["xpu"].reason == "probe failed (RuntimeError: driver crashed)"
    assert results["cuda"].devices and results["mps"].reason


def test_this_machine_lists_every_accelerator_as_unavailable_with_a_reason():
    rows = {(r.backend, r.device): r for r in Registry().all_backend_status()}
    for device in ("cuda", "npu", "xpu", "mps"):
        row = rows[("torch", device)]
        assert not row.available and row.reason
    for provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider", "CANNExecutionProvider",
                     "OpenVINOExecutionProvider"):
        row = rows[("onnxruntime", provider)]
        assert not row.available and "comes with onnxruntime-" in row.reason
    assert rows[("torch", "cpu")].available and rows[("onnxruntime", "CPUExecutionProvider")].available


def test_silent_cpu_fallback_in_onnxruntime_is_an_error_not_cpu_numbers(monkeypatch):
    """Pretend the build offers CUDA: ONNX Runtime then falls back to the CPU with only a
    warning, and the backend must turn that into a failed record."""
    import onnxruntime

    real = onnxruntime.get_available_providers
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [*real(), "CUDAExecutionProvider"])
    spec = BenchmarkSpec.create(backend="onnxruntime", device="CUDAExecutionProvider", workload="gemm",
                                params={"size": 16}, iterations=3)
    outcome = execute(spec, Registry())
    assert outcome.status == "failed" and outcome.measurement is None
    assert "fell back to ['CPUExecutionProvider'] instead of CUDAExecutionProvider" in outcome.failure["message"]


def test_backends_json_on_this_machine_via_cli():
    result = subprocess.run([sys.executable, "-m", "harness.presentation.cli", "backends", "--json"], capture_output=True,
                            text=True, timeout=120, cwd=REPO)
    rows = json.loads(result.stdout)
    unavailable = {(r["backend"], r["device"]) for r in rows if not r["available"]}
    assert {("torch", "cuda"), ("torch", "npu"), ("onnxruntime", "CANNExecutionProvider")} <= unavailable


def test_event_timer_converts_device_milliseconds_and_cpu_uses_the_host_clock():
    from backends.torch_backend import TorchEventTimer, _check_bf16
    from harness.contract.errors import Unsupported

    class FakeEvent:
        def __init__(self, device, enable_timing):
            self.recorded = 0

        def record(self):
            self.recorded += 1

        def elapsed_time(self, end):
            return 1.25  # ms, as CUDA and NPU events report

    device = SimpleNamespace(type="cuda")
    timer = TorchEventTimer(SimpleNamespace(Event=FakeEvent), device)
    timer.start()
    timer.stop()
    assert timer.elapsed_ns() == 1_250_000 and timer.name.startswith("torch.Event(cuda")

    no_bf16 = SimpleNamespace(is_bf16_supported=lambda: False)
    try:
        _check_bf16(no_bf16, device, "bfloat16")
        raise AssertionError("expected Unsupported")
    except Unsupported as exc:
        assert "does not support bfloat16" in str(exc)
    _check_bf16(no_bf16, device, "float16")  # other dtypes are not refused here

    registry = Registry()
    workload = registry.workload("gemm", {"size": 8})
    prepared = registry.backend("torch").prepare(workload, BenchmarkSpec.create(
        backend="torch", device="cpu", workload="gemm"))
    assert prepared.device_timer() is None
