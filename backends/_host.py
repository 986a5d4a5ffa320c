"""Host CPU identity shared by the backends that run on the CPU."""

from __future__ import annotations

from typing import Any


def cpu_device_facts() -> dict[str, Any]:
    """Vendor, model and memory of the host CPU, as DeviceInfo keyword arguments."""
    import psutil

    from harness.environment import cpu_identity

    cpu = cpu_identity()
    return {
        "vendor": cpu["vendor"],
        "model": cpu["model"],
        "memory_bytes": psutil.virtual_memory().total,
    }
