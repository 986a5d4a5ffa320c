"""Host CPU facts shared by the backends that run on the CPU: identity, native dtypes, peaks."""

from __future__ import annotations

from typing import Any


def cpu_device_facts() -> dict[str, Any]:
    """Vendor, model and memory of the host CPU, its native dtypes (from its flags) and its
    peak FLOP/s (cores x clock x vector width), as DeviceInfo keyword arguments."""
    import psutil

    from harness.engine.telemetry.environment import cloud_instance, cpu_identity
    from harness.hardware.plausibility import host_cpu_peaks
    from harness.hardware.precision import cpu_precision, read_cpu_features

    cpu = cpu_identity()
    features = read_cpu_features()
    precision = cpu_precision(features)
    return {
        "vendor": cpu["vendor"],
        "model": cpu["model"],
        "memory_bytes": psutil.virtual_memory().total,
        **(precision.device_fields() if precision else {}),
        "peaks": host_cpu_peaks(features),
        "cloud_instance": cloud_instance(),
    }


def device_meters(device_type: str, index: int = 0) -> list[Any]:
    """The energy meters that can see a device of this type (the EnergyMetered capability's
    helper for the built-in backends): NVML for NVIDIA, npu-smi for Ascend, and always the host
    CPU package through RAPL, which draws power whatever the device."""
    from harness.engine.telemetry import NpuSmiMeter, NvmlMeter, RaplMeter

    meters: list[Any] = []
    if device_type == "cuda":
        meters.append(NvmlMeter(index))
    elif device_type == "npu":
        meters.append(NpuSmiMeter(index))
    meters.append(RaplMeter())
    return meters


class HostEnergy:
    """The EnergyMetered capability for runtimes whose meters are the host's alone (RAPL):
    OpenVINO on the CPU or an Intel GPU sharing the package, where no device meter is read."""

    def energy_meters(self) -> list[Any]:
        return device_meters("cpu")
