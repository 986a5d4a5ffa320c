"""Which torch accelerators can run here, and precisely why not.

Probes ``cuda`` (CUDA and ROCm builds, told apart by ``torch.version.hip``),
``npu`` (Huawei Ascend through torch_npu), ``xpu`` and ``mps``. Each probe
returns devices or one precise reason: "torch_npu not installed", "CANN
toolkit not found: source set_env.sh", "torch is a CUDA build; torch_npu
needs the CPU build", "no device visible", ...

A broken vendor stack must not break the others: torch_npu registers itself
to load on ``import torch`` and a broken install makes that import fail, so
``TORCH_DEVICE_BACKEND_AUTOLOAD=0`` is set before torch is first imported and
torch_npu is imported explicitly, inside a guard that catches any exception.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any, Callable

DEVICE_TYPES = ("cuda", "npu", "xpu", "mps")


@dataclass
class ProbeResult:
    kind: str
    devices: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None


def import_torch():
    """Import torch without autoloading out-of-tree device backends."""
    os.environ.setdefault("TORCH_DEVICE_BACKEND_AUTOLOAD", "0")
    import torch

    return torch


def npu_import_reason(exc: BaseException, torch) -> str:
    """A precise reason from torch_npu's import failure."""
    text = str(exc)
    if "Two accelerators cannot be used" in text or (getattr(torch.version, "cuda", None) and "cuda" in text.lower()):
        return "torch is a CUDA build; torch_npu needs the CPU build"
    if any(lib in text for lib in ("libascendcl", "libhccl", "set_env.sh", "cann")):
        return "CANN toolkit not found: source set_env.sh (e.g. /usr/local/Ascend/ascend-toolkit/set_env.sh)"
    return f"torch_npu failed to import ({type(exc).__name__}: {' '.join(text.split())[:160]})"


def _list(torch, kind: str, module) -> list[dict[str, Any]]:
    devices = []
    for index in range(module.device_count()):
        facts: dict[str, Any] = {"device": f"{kind}:{index}"}
        try:
            properties = module.get_device_properties(index)
            facts["model"] = getattr(properties, "name", None)
            facts["memory_bytes"] = getattr(properties, "total_memory", None)
        except Exception:  # noqa: BLE001 - not every device module has properties
            pass
        devices.append(facts)
    return devices


def probe_cuda(torch) -> ProbeResult:
    hip = getattr(torch.version, "hip", None)
    cuda = getattr(torch.version, "cuda", None)
    if not hip and not cuda:
        return ProbeResult("cuda", reason="torch is a CPU build (no CUDA or ROCm); install a CUDA or ROCm wheel")
    runtime = f"ROCm {hip}" if hip else f"CUDA {cuda}"
    if not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        hint = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
        return ProbeResult("cuda", reason=f"no device visible to the {runtime} build{hint}")
    devices = _list(torch, "cuda", torch.cuda)
    for index, device in enumerate(devices):
        device["runtime_version"] = runtime
        if not hip:  # ROCm reports gfx numbers through the same call; the sm_ rules do not apply
            try:
                device["capability"] = tuple(torch.cuda.get_device_capability(index))
            except Exception:  # noqa: BLE001 - unknown capability: native dtypes stay undeclared
                pass
    return ProbeResult("cuda", devices)


def probe_npu(torch, find_spec: Callable[[str], Any] = importlib.util.find_spec,
              import_module: Callable[[str], Any] = importlib.import_module) -> ProbeResult:
    if find_spec("torch_npu") is None:
        return ProbeResult("npu", reason="torch_npu not installed")
    if getattr(torch.version, "cuda", None) or getattr(torch.version, "hip", None):
        return ProbeResult("npu", reason="torch is a CUDA build; torch_npu needs the CPU build")
    try:
        import_module("torch_npu")
    except Exception as exc:  # noqa: BLE001 - ImportError, RuntimeError and plain Exception all occur
        return ProbeResult("npu", reason=npu_import_reason(exc, torch))
    module = getattr(torch, "npu", None)
    if module is None or not module.is_available():
        return ProbeResult("npu", reason="no device visible (CANN present; check ASCEND_RT_VISIBLE_DEVICES)")
    return ProbeResult("npu", _list(torch, "npu", module))


def probe_xpu(torch) -> ProbeResult:
    module = getattr(torch, "xpu", None)
    if module is None or not hasattr(module, "is_available"):
        return ProbeResult("xpu", reason="this torch build has no XPU support")
    if not module.is_available():
        return ProbeResult("xpu", reason="no device visible (or torch built without XPU)")
    return ProbeResult("xpu", _list(torch, "xpu", module))


def probe_mps(torch) -> ProbeResult:
    mps = getattr(getattr(torch, "backends", None), "mps", None)
    if mps is None or not mps.is_built():
        return ProbeResult("mps", reason="this torch build has no MPS support (Apple silicon, macOS only)")
    if not mps.is_available():
        return ProbeResult("mps", reason="no device visible (MPS needs macOS 12.3+ on Apple silicon)")
    return ProbeResult("mps", [{"device": "mps", "model": "Apple GPU (MPS)"}])


def probe_all(torch) -> list[ProbeResult]:
    results = []
    for probe in (probe_cuda, probe_npu, probe_xpu, probe_mps):
        try:
            results.append(probe(torch))
        except Exception as exc:  # noqa: BLE001 - one broken stack never hides the others
            kind = probe.__name__.removeprefix("probe_")
            results.append(ProbeResult(kind, reason=f"probe failed ({type(exc).__name__}: {exc})"))
    return results
