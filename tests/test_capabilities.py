"""The declared capabilities (harness/contract/capabilities.py): core asks for optional hooks only
through ``capability()``, never by name with a default, and never branches on a device name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from harness.contract.capabilities import (
    BACKEND,
    CAPABILITIES,
    PREPARED,
    WORKLOAD,
    ConcurrentSteps,
    EnergyMetered,
    Generative,
    StreamingStep,
    capability,
    markdown_table,
    offered,
    required_members,
    suspect_hooks,
)
from harness.contract.interface import Prepared
from harness.engine.plugins import Registry

ROOT = Path(__file__).resolve().parent.parent
#: Hooks that existed before the capabilities were declared, looked up by name with a default.
RETIRED_HOOKS = {"generative", "onnx_only", "physical_device", "path"}
#: Device names a branch in core would test for.
DEVICE_WORDS = ("cuda", "npu", "xpu", "mps", "rocm", "hip", "cann", "gpu")


def _python_files(*folders: str) -> list[Path]:
    return [path for folder in folders for path in sorted((ROOT / folder).rglob("*.py"))]


def _hook_names() -> set[str]:
    names = set(RETIRED_HOOKS)
    for cap in CAPABILITIES:
        names |= set(cap.members)
    for target in (BACKEND, PREPARED, WORKLOAD):
        names |= required_members(target)
    return names - {"name"}  # too generic: runtimes' own objects have names (torch device properties)


def test_no_plugin_hook_is_looked_up_by_name_outside_the_capability_helper():
    hooks = _hook_names()
    found = []
    for path in _python_files("harness", "backends"):
        if path.name == "capabilities.py" and path.parent.name == "contract":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
                    and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
                    and node.args[1].value in hooks):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.func.id}(..., {node.args[1].value!r})")
    assert not found, "plugin hooks read by name; use harness.contract.capabilities.capability(): " + "; ".join(found)


def test_the_scan_above_can_fail():
    """The AST rule sees the pattern it forbids (a scan that matches nothing would pass forever)."""
    tree = ast.parse('streaming = getattr(prepared, "step_streaming", None)')
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call))
    assert call.func.id == "getattr" and call.args[1].value in _hook_names()


def test_core_never_branches_on_a_device_name():
    """A comparison or ``startswith`` against a device word in harness/ is a device branch."""
    pattern = re.compile(r"""(==|!=|startswith\(|\bin\s*\()\s*["'](%s)""" % "|".join(DEVICE_WORDS), re.IGNORECASE)
    found = []
    for path in _python_files("harness"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if pattern.search(code) and '``' not in code:
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "device branches in core (the backend decides; e.g. EnergyMetered): " + "; ".join(found)
    assert pattern.search('if device.startswith("cuda"):')


def test_meters_come_from_the_prepared_object_not_the_device_name():
    from harness.engine.runner import backend_meters

    class Plain(Prepared):
        def step(self):
            pass

    class Metered(Plain):
        def energy_meters(self):
            return ["acme-power"]

    assert backend_meters(Metered()) == ["acme-power"]
    assert backend_meters(Plain()) == []  # no meter offered: energy is null, with that reason
    assert capability(Plain(), EnergyMetered) is None


def test_flags_are_read_for_their_value():
    class Serial(Prepared):
        concurrent_safe = False

        def step(self):
            pass

    offered_as = capability(Serial(), ConcurrentSteps)
    assert offered_as is not None and offered_as.concurrent_safe is False


def test_the_built_in_workloads_declare_what_backends_read():
    registry = Registry()
    llm = capability(registry.workload("llm", {"preset": "tiny", "new_tokens": 3}), Generative)
    assert llm is not None and llm.new_tokens == 3 and llm.kv_layout().layers >= 1
    assert "Generative" in offered(registry.workload("moe", {"preset": "tiny"}), WORKLOAD)
    assert capability(registry.workload("gemm", {"size": 8}), Generative) is None


@pytest.mark.parametrize("attribute, nearest", [("step_streming", "step_streaming"),
                                                ("energy_meter", "energy_meters"),
                                                ("concurent_safe", "concurrent_safe")])
def test_a_near_miss_of_a_prepared_hook_is_suspect(attribute, nearest):
    value = (lambda self, *a: None) if not attribute.startswith("concur") else True
    typo = type("Typo", (Prepared,), {"step": lambda self: None, attribute: value})
    (hook,) = suspect_hooks(typo(), PREPARED)
    assert (hook.attribute, hook.nearest) == (attribute, nearest)
    assert f"did you mean {nearest!r}" in hook.message("acme")


def test_a_backend_hook_on_the_prepared_object_is_suspect_and_ordinary_names_are_not():
    class Confused(Prepared):
        def step(self):
            pass

        def ray_requirements(self, device):  # belongs on the backend
            return None

    (hook,) = suspect_hooks(Confused(), PREPARED)
    assert hook.attribute == "ray_requirements" and "put it on the backend" in hook.message("acme")

    class Ordinary(Prepared):
        def __init__(self):
            super().__init__()
            self.output = None  # data, not the outputs() method
            self.new_tokens = 4  # a prepared object may keep its own counts

        def step(self):
            pass

    assert suspect_hooks(Ordinary(), PREPARED) == []


def test_streaming_is_offered_only_with_the_method():
    class Streams(Prepared):
        def step(self):
            pass

        def step_streaming(self, mark):
            mark()

    assert capability(Streams(), StreamingStep) is not None
    assert offered(Streams(), PREPARED) == ["StreamingStep"]


def test_writing_a_backend_lists_every_capability():
    """docs/writing-a-backend.md carries the table generated from harness/contract/capabilities.py."""
    doc = (ROOT / "docs" / "writing-a-backend.md").read_text()
    assert markdown_table() in doc, ("docs/writing-a-backend.md's capability table differs from "
                                     "harness.contract.capabilities.markdown_table(); paste the new table")
