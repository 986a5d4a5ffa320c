"""Host CPU facts shared by the backends that run on the CPU: identity, native dtypes, peaks."""

from __future__ import annotations

from typing import Any


def cpu_device_facts() -> dict[str, Any]:
    """Vendor, model and memory of the host CPU, its native dtypes (from its flags) and its
    peak FLOP/s (cores x clock x vector width), as DeviceInfo keyword arguments."""
    import psutil

    from harness.environment import cpu_identity
    from harness.plausibility import host_cpu_peaks
    from harness.precision import cpu_precision, read_cpu_features

    cpu = cpu_identity()
    features = read_cpu_features()
    precision = cpu_precision(features)
    return {
        "vendor": cpu["vendor"],
        "model": cpu["model"],
        "memory_bytes": psutil.virtual_memory().total,
        **(precision.device_fields() if precision else {}),
        "peaks": host_cpu_peaks(features),
    }
