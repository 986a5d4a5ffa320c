"""Facts about the host, recorded in every run manifest.

A comparison across runs is only fair when environments match, so the
manifest carries the CPU, memory, OS, Python and the versions of the packages
that decide performance (:data:`KEY_PACKAGES` says which, and why, plus every
installed third-party plugin). Versions come from package metadata, never from
importing the package (importing torch to read its version costs seconds).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

#: Distributions whose versions can change a measured number, recorded in the manifest's
#: ``host.packages`` when installed and hashed into every record's fingerprint
#: (harness/engine/telemetry/fingerprint.py). The rule: a package belongs here when a new version of it
#: can make the same benchmark, on the same machine, run faster or slower or produce different
#: outputs, because it runs the timed work, compiles or converts the graph that is timed, or
#: generates the workload's model and inputs. Packages that only present, store or orchestrate
#: results (click, rich, pandas, pyarrow, tabulate, matplotlib, aiohttp, ray) or read counters the
#: kernel keeps (psutil) do not: a version bump there must not make two runs look incomparable.
#: Nor does mlcommons-loadgen, which only the harness's own agreement test uses, nor
#: transformers/optimum, which bakeoff does not use. Third-party backend and workload plugins
#: are added by :func:`plugin_packages`.
KEY_PACKAGES = (
    # The built-in backends and workloads, the timing loop and the scenarios.
    "bakeoff",
    "numpy",
    # torch: eager and compiled runs, and the source of every exported or converted graph.
    "torch",
    "torch-npu",  # Ascend: the npu device and torchair
    "intel-extension-for-pytorch",
    # ONNX Runtime: one of these per environment (they install the same module).
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-cann",
    "onnxruntime-openvino",
    "onnxruntime-rocm",  # AMD's build with the MIGraphX provider
    # onnx and the dynamo exporter behind torch.onnx.export: they write the graph ONNX Runtime times.
    "onnx",
    "onnxscript",
    # OpenVINO, and nncf, which compresses its int8 weights.
    "openvino",
    "nncf",
)


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): ``Bakeoff_Testing`` is ``bakeoff-testing``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def plugin_packages() -> dict[str, str]:
    """Name and version of every installed distribution that provides a backend, workload or
    scenario plugin (the ``bakeoff.backends``, ``bakeoff.workloads`` and ``bakeoff.scenarios``
    entry points, harness/engine/plugins.py), bakeoff itself excepted (it is in :data:`KEY_PACKAGES`).
    A backend plugin runs the timed work, a workload plugin defines it and a scenario plugin
    issues it, so any one's version can change the numbers just as onnxruntime's can, whether or
    not it loads. Never raises."""
    try:
        from harness.engine.plugins import BACKEND_GROUP, SCENARIO_GROUP, WORKLOAD_GROUP, discover

        groups = (BACKEND_GROUP, WORKLOAD_GROUP, SCENARIO_GROUP)
        entries = [entry for group in groups for entry in discover(group).values()]
    except Exception:  # noqa: BLE001 - a broken plugin's metadata must not stop a run
        return {}
    found: dict[str, str] = {}
    for entry in entries:
        name = entry.distribution
        if not name or _canonical(name) == "bakeoff" or name in found:
            continue
        found[name] = package_version(name) or "unknown"
    return found


def key_packages() -> dict[str, str]:
    """``{distribution: version}``: the installed :data:`KEY_PACKAGES` and plugin distributions."""
    packages = {name: version for name in KEY_PACKAGES if (version := package_version(name))}
    known = {_canonical(name) for name in packages}
    for name, version in plugin_packages().items():
        if _canonical(name) not in known:
            packages[name] = version
    return packages


def cpu_identity() -> dict[str, Any]:
    """CPU vendor and model from /proc/cpuinfo where present, else ``platform``."""
    vendor = model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "vendor_id" and vendor is None:
                vendor = value
            elif key == "model name" and model is None:
                model = value
            if vendor and model:
                break
    except OSError:
        pass
    vendor = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}.get(vendor or "", vendor)
    return {
        "vendor": vendor,
        "model": model or platform.processor() or platform.machine(),
        "architecture": platform.machine(),
    }


#: A DMI product name that is an instance type: ``m7i.large``, ``c7g.2xlarge`` (AWS); other
#: clouds write their own name there ("Google Compute Engine", "Virtual Machine").
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")


def cloud_instance(dmi: Path = Path("/sys/class/dmi/id")) -> str | None:
    """The cloud instance type from the host's DMI product name, where it is one (read offline,
    no metadata service); ``None`` elsewhere."""
    try:
        name = (dmi / "product_name").read_text().strip()
    except OSError:
        return None
    return name if _INSTANCE_TYPE.match(name) else None


def git_commit(path: Path | None = None) -> dict[str, Any] | None:
    """The git commit of the bakeoff source tree, when it is a checkout."""
    root = path or Path(__file__).resolve().parents[3]  # harness/engine/telemetry/ -> the source tree
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def collect_host() -> dict[str, Any]:
    import psutil

    memory = psutil.virtual_memory()
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return {
        "hostname": socket.gethostname(),
        "cpu": {
            **cpu_identity(),
            "physical_cores": psutil.cpu_count(logical=False),
            "logical_cores": psutil.cpu_count(logical=True),
            "usable_cores": len(affinity) if affinity is not None else os.cpu_count(),
        },
        "memory_bytes": memory.total,
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "packages": key_packages(),
    }


def default_threads() -> int:
    """Threads per benchmark when the user does not say: every usable core."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
