"""Facts about the host, recorded in every run manifest.

A comparison across runs is only fair when environments match, so the
manifest carries the CPU, memory, OS, Python and the versions of the packages
that decide performance. Versions come from package metadata, never from
importing the package (importing torch to read its version costs seconds).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

#: Packages whose versions change the numbers.
KEY_PACKAGES = (
    "bakeoff",
    "torch",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnx",
    "openvino",
    "numpy",
    "pandas",
    "psutil",
    "click",
    "rich",
)


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


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


def git_commit(path: Path | None = None) -> dict[str, Any] | None:
    """The git commit of the bakeoff source tree, when it is a checkout."""
    root = path or Path(__file__).resolve().parent.parent
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
        "packages": {name: package_version(name) for name in KEY_PACKAGES if package_version(name)},
    }


def default_threads() -> int:
    """Threads per benchmark when the user does not say: every usable core."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
