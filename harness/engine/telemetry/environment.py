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
from typing import Any, Mapping

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


#: aarch64 /proc/cpuinfo names no model, only the MIDR's "CPU implementer" and "CPU part"; these
#: are the names lscpu gives them (util-linux sys-utils/lscpu-arm.c), for the server cores a
#: buyer meets.
ARM_IMPLEMENTERS = {0x41: "ARM", 0x48: "HiSilicon", 0x4E: "NVIDIA", 0x51: "Qualcomm", 0xC0: "Ampere"}
ARM_CORES = {
    (0x41, 0xD0C): "Neoverse-N1", (0x41, 0xD40): "Neoverse-V1", (0x41, 0xD49): "Neoverse-N2",
    (0x41, 0xD4F): "Neoverse-V2", (0x41, 0xD8E): "Neoverse-N3", (0x41, 0xD84): "Neoverse-V3",
    (0x48, 0xD01): "TaiShan-v110", (0x48, 0xD02): "TaiShan-v120",
}
#: The chip a core names, where the core alone (TaiShan-v110 is only in Kunpeng 920, per
#: lscpu-arm.c) or the core plus the DMI system vendor (a Neoverse-V1 in an "Amazon EC2" system is
#: a Graviton3; Graviton3E shares the core and is named with it) says which. A Neoverse-V2 is also
#: NVIDIA Grace and Google Axion, so it names a chip only with its vendor.
ARM_CHIPS = {
    ("TaiShan-v110", None): "HiSilicon Kunpeng-920",
    ("Neoverse-N1", "Amazon EC2"): "AWS Graviton2",
    ("Neoverse-V1", "Amazon EC2"): "AWS Graviton3",
    ("Neoverse-V2", "Amazon EC2"): "AWS Graviton4",
}


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def cpu_identity(cpuinfo: str | None = None, dmi: Path = Path("/sys/class/dmi/id"),
                 machine: str | None = None) -> dict[str, Any]:
    """CPU vendor and model from /proc/cpuinfo where present, else ``platform``.

    On aarch64, where /proc/cpuinfo has no "model name", the model is the implementer and
    core (``ARM Neoverse-V1``), and the chip where :data:`ARM_CHIPS` can tell it
    (``AWS Graviton3 (Neoverse-V1)``), so the catalog can match Graviton and Kunpeng hosts.
    ``cpuinfo``, ``dmi`` and ``machine`` are for tests (planted files)."""
    text = cpuinfo if cpuinfo is not None else _read(Path("/proc/cpuinfo")) or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    vendor, model = fields.get("vendor_id"), fields.get("model name")
    if model is None and "CPU implementer" in fields:
        vendor, model = _arm_identity(fields, _read(dmi / "sys_vendor"))
    vendor = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}.get(vendor or "", vendor)
    architecture = machine or platform.machine()
    return {
        "vendor": vendor,
        "model": model or platform.processor() or architecture,
        "architecture": architecture,
    }


def _arm_identity(fields: Mapping[str, str], system_vendor: str | None) -> tuple[str | None, str | None]:
    try:
        implementer, part = int(fields["CPU implementer"], 16), int(fields.get("CPU part", ""), 16)
    except ValueError:
        return None, None
    vendor = ARM_IMPLEMENTERS.get(implementer, f"implementer 0x{implementer:02x}")
    core = ARM_CORES.get((implementer, part))
    if core is None:
        return vendor, f"{vendor} part 0x{part:03x}"
    chip = ARM_CHIPS.get((core, None)) or ARM_CHIPS.get((core, system_vendor))
    return vendor, f"{chip} ({core})" if chip else f"{vendor} {core}"


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
