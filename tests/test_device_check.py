"""scripts/device_check.py: its checks on synthetic records, and a real run on this GPU-less machine
(which must fail loudly, never pass)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "device_check.py"
spec = importlib.util.spec_from_file_location("device_check", SCRIPT)
device_check = importlib.util.module_from_spec(spec)
sys.modules["device_check"] = device_check  # dataclasses look their module up
spec.loader.exec_module(device_check)


def good_record(workload: str, **changes):
    record = {
        "spec": {"workload": workload},
        "status": "ok",
        "throughput": {"value": 7.0e14, "unit": "FLOP/s", "ci_low": 6.9e14, "ci_high": 7.1e14},
        "parity": {"passed": True, "max_abs_error": 1e-3, "cosine": 0.99999},
        "measurement": {"timer": "torch.Event(cuda, enable_timing=True)"},
        "memory": {"device_peak_bytes": 1 << 30},
        "energy": {"meters": [{"meter": "nvml", "joules": 512.0, "method": "counter"}]},
    }
    record.update(changes)
    return record


def test_a_clean_torch_leg_passes_every_check():
    checks = device_check.evaluate([good_record(w) for w in ("gemm", "membw", "llm")], "torch")
    assert checks and all(c.passed for c in checks)
    assert any("700 TFLOP/s" in c.detail for c in checks)


@pytest.mark.parametrize("changes, failing", [
    ({"parity": {"passed": False, "reason": "max abs 3.1"}}, "parity"),
    ({"measurement": {"timer": "time.perf_counter_ns"}}, "device-event timing"),
    ({"energy": {"meters": [], "reason": "no meter could read: nvml: no NVML"}}, "NVML energy"),
    ({"memory": {"device_peak_bytes": None}}, "device peak memory"),
    ({"status": "failed", "reason": "CUDA out of memory"}, "ran"),
])
def test_each_broken_property_fails_its_check(changes, failing):
    records = [good_record("gemm", **changes), good_record("membw"), good_record("llm")]
    failed = [c for c in device_check.evaluate(records, "torch") if c.passed is False]
    assert [c.name for c in failed] == [f"torch gemm {failing}"]


def test_a_missing_workload_is_a_failure():
    failed = [c for c in device_check.evaluate([good_record("gemm")], "onnxruntime") if c.passed is False]
    assert {c.name for c in failed} == {"onnxruntime membw ran", "onnxruntime llm ran"}


@pytest.mark.slow
def test_on_a_machine_without_a_gpu_the_device_check_exits_nonzero(tmp_path):
    env = {**os.environ, "DEVICE_CHECK_SKIP": "onnxruntime"}
    result = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--timeout", "60"],
                            capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    verdicts = {c["name"]: c["verdict"] for c in summary["checks"]}
    assert verdicts["onnxruntime leg"] == "SKIP"
    assert verdicts["torch gemm ran"] == "FAIL"
    assert (tmp_path / "runs.tar.gz").exists()
