"""Environment fingerprints: a stable hash over what decides comparability.

Two records are comparable when their fingerprints match: same CPU model and
core counts, same accelerator model, driver and runtime versions, same
backend version and thread setting, same versions of the packages that move
the numbers. Host names, dates and run ids are deliberately left out, so two
runs on one machine get equal fingerprints.

The packages are the host's ``packages`` (harness/engine/telemetry/environment.py,
``key_packages``): the installed distributions that can change a measured
number (bakeoff, numpy, torch and its device extensions, every onnxruntime
build, the ONNX exporters, openvino and nncf) and the distribution of every
installed third-party backend or workload plugin. Presentation and storage
libraries (click, rich, pandas, ...) are left out on purpose: upgrading them
must not make two otherwise identical runs look incomparable.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping


def fingerprint_inputs(host: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    cpu = host.get("cpu") or {}
    device = record.get("device_info") or {}
    spec = record.get("spec") or {}
    return {
        "cpu_model": cpu.get("model"),
        "cpu_architecture": cpu.get("architecture"),
        "physical_cores": cpu.get("physical_cores"),
        "logical_cores": cpu.get("logical_cores"),
        "usable_cores": cpu.get("usable_cores"),
        "memory_bytes": host.get("memory_bytes"),
        "python": host.get("python"),
        "packages": dict(sorted((host.get("packages") or {}).items())),
        "backend": spec.get("backend"),
        "backend_version": record.get("backend_version"),
        "device": spec.get("device"),
        "device_model": device.get("model"),
        "device_memory_bytes": device.get("memory_bytes"),
        "runtime_version": device.get("runtime_version"),
        "driver_version": device.get("driver_version"),
        "threads": spec.get("threads"),
    }


def fingerprint(inputs: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]
