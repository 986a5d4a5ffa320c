"""Plugin discovery through entry points, and isolation of broken plugins."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.contract.errors import UserError
from harness.contract.interface import Backend
from harness.engine.plugins import BACKEND_GROUP, Registry, discover


def test_builtins_register_through_entry_points():
    registry = Registry()
    assert {"torch", "onnxruntime", "openvino"} <= set(registry.backend_names())
    assert {"gemm", "mlp"} <= set(registry.workload_names())
    torch_entry = registry.backend_entries["torch"]
    assert torch_entry.group == BACKEND_GROUP
    assert torch_entry.distribution == "bakeoff"
    assert isinstance(registry.backend("torch"), Backend)


def test_test_plugins_are_found_only_when_installed(test_plugins):
    entries = discover(BACKEND_GROUP)
    assert entries["null"].distribution == "bakeoff-testing"
    assert entries["broken"].target == "bakeoff_testing.broken:BrokenBackend"


def test_broken_plugin_is_unavailable_with_its_import_error(test_plugins):
    registry = Registry()
    [row] = registry.backend_status("broken")
    assert not row.available
    assert row.reason.startswith("plugin failed to load: ModuleNotFoundError")
    assert "bakeoff_vendor_sdk_that_does_not_exist" in row.reason
    # ...and the other backends are unaffected
    assert registry.backend_status("null")[0].available
    with pytest.raises(RuntimeError, match="plugin failed to load"):
        registry.backend("broken")


def test_misbehaving_plugins_are_contained(test_plugins):
    registry = Registry()
    rows = {row.backend: row for row in registry.all_backend_status()}
    assert rows["probe-raises"].reason == "probe failed: OSError: libfake.so: cannot open shared object file"
    assert "does not implement the Backend protocol" in rows["not-a-backend"].reason
    assert rows["absent"].reason == "no Fake accelerator found (driver not loaded)"
    assert not any(rows[name].available for name in ("probe-raises", "not-a-backend", "absent", "broken"))
    with pytest.raises(RuntimeError, match="plugin failed to load"):
        registry.workload_class("broken-workload")


def test_unknown_names_are_user_errors():
    registry = Registry()
    with pytest.raises(UserError, match=r"unknown backend 'tpu' \(known: .*torch"):
        registry.backend("tpu")
    with pytest.raises(UserError, match=r"unknown workload 'resnet' \(known: .*gemm, .*mlp"):
        registry.workload("resnet")


def test_workload_parameters_are_validated():
    registry = Registry()
    assert registry.workload("gemm", {"size": "128"}).values == {"size": 128}
    with pytest.raises(UserError, match="unknown parameter 'sise'"):
        registry.workload("gemm", {"sise": 1})
    with pytest.raises(UserError, match="size='big' is not a valid int"):
        registry.workload("gemm", {"size": "big"})
    with pytest.raises(UserError, match="must be >= 1"):
        registry.workload("gemm", {"size": 0})


def test_core_imports_nothing_heavy():
    """Listing plugins and loading results must not import torch, onnxruntime or openvino."""
    code = (
        "import sys, harness, harness.presentation.cli, harness.results.store, harness.orchestration.sweep, harness.orchestration.launchers\n"
        "from harness.engine.plugins import Registry\n"
        "r = Registry(); r.backend_names(); r.workload_class('gemm'); r.workload('mlp')\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'openvino', 'onnx') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().replace("'", '"')) == []
