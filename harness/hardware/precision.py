"""Which dtypes a device computes natively, and why not where it does not.

A dtype without native support usually still runs: the runtime converts to
float32 and back around every operation, at a fraction of the speed (on an
AVX2-only EPYC, torch's bfloat16 gemm ran at 0.69 GFLOP/s against 41.6 in
float32). Such a number measures the emulation, not the device, so a record
at a non-native dtype says so, and why, instead of leaving a reader to guess
from an "invalid: too few queries" note.

Everything here is a pure function of injected facts: CPU flags (read from
``/proc/cpuinfo`` by :func:`read_cpu_features`, planted in tests), a CUDA
compute capability, a runtime's own capability list. Backends call these and
declare the result on :class:`harness.contract.interface.DeviceInfo`
(``native_dtypes``, ``emulated_dtypes``); :func:`precision_of` turns a
declared device and a dtype into the record's ``precision`` field.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from harness.contract.precisions import PRECISIONS

#: x86 ``/proc/cpuinfo`` "flags" that give each dtype native arithmetic (any one suffices).
#: float32 is native on every x86-64 CPU (SSE2 is the baseline). ``f16c`` only converts.
X86_DTYPE_FLAGS: dict[str, tuple[str, ...]] = {
    "float16": ("avx512_fp16", "amx_fp16"),
    "bfloat16": ("avx512_bf16", "amx_bf16"),
    "int8": ("avx512_vnni", "avx_vnni", "amx_int8"),
}
#: aarch64 ``/proc/cpuinfo`` "Features" that do the same.
ARM_DTYPE_FLAGS: dict[str, tuple[str, ...]] = {
    "float16": ("fphp", "asimdhp"),
    "bfloat16": ("bf16",),
    "int8": ("asimddp", "i8mm"),
}
X86_MACHINES = ("x86_64", "amd64", "i686", "i386")
ARM_MACHINES = ("aarch64", "arm64")


@dataclass(frozen=True)
class CpuFeatures:
    """A CPU's architecture (``platform.machine()``) and its feature flags, with where they came from."""

    architecture: str
    flags: frozenset[str]
    source: str = "/proc/cpuinfo"


@dataclass(frozen=True)
class Precision:
    """What a device computes natively, and for each other known dtype why not."""

    native: tuple[str, ...]
    emulated: dict[str, str] = field(default_factory=dict)

    def device_fields(self) -> dict[str, Any]:
        """As :class:`DeviceInfo` keyword arguments."""
        return {"native_dtypes": self.native, "emulated_dtypes": dict(self.emulated)}


def parse_cpuinfo(text: str) -> frozenset[str]:
    """The first ``flags`` (x86) or ``Features`` (aarch64) line of /proc/cpuinfo, as a set."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def read_cpuinfo() -> str:
    """The text of /proc/cpuinfo, or "" where there is none (macOS, Windows)."""
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def host_machine() -> str:
    """The host's architecture as Python names it (``x86_64``, ``aarch64``)."""
    return platform.machine()


def read_cpu_features(read: Callable[[], str] | None = None,
                      machine: Callable[[], str] | None = None) -> CpuFeatures | None:
    """The host CPU's flags; ``None`` when the OS does not list them.

    ``read`` and ``machine`` default to :func:`read_cpuinfo` and
    :func:`host_machine`, looked up at call time so a test can plant a CPU for
    everything that asks (``bakeoff backends`` too).
    """
    text = (read or read_cpuinfo)()
    flags = parse_cpuinfo(text)
    if not flags:
        return None
    return CpuFeatures((machine or host_machine)().lower(), flags)


def cpu_precision(features: CpuFeatures | None) -> Precision | None:
    """Native dtypes of a CPU from its flags; ``None`` for an architecture without a rule here."""
    if features is None:
        return None
    if features.architecture in X86_MACHINES:
        table, what = X86_DTYPE_FLAGS, "CPU lacks"
    elif features.architecture in ARM_MACHINES:
        table, what = ARM_DTYPE_FLAGS, "CPU lacks"
    else:
        return None
    native, emulated = ["float32"], {}
    for dtype, flags in table.items():
        if features.flags.intersection(flags):
            native.append(dtype)
        else:
            emulated[dtype] = f"{what} {'/'.join(flags)}"
    return Precision(tuple(native), emulated)


def cuda_precision(capability: tuple[int, int]) -> Precision:
    """Native dtypes of an NVIDIA GPU from its compute capability (``torch.cuda.get_device_capability``).

    float16 arithmetic from sm_53 (sm_61, consumer Pascal, runs it at 1/64
    rate, so not native); bfloat16 from sm_80 (Ampere); int8 dot products
    (dp4a) from sm_61; float8 e4m3 tensor cores from sm_89 (Ada, Hopper).
    """
    major, minor = int(capability[0]), int(capability[1])
    cc, sm = (major, minor), f"sm_{major}{minor}"
    native, emulated = ["float32"], {}
    if cc == (6, 1):
        emulated["float16"] = "sm_61 runs float16 at 1/64 of its float32 rate"
    elif cc >= (5, 3):
        native.append("float16")
    else:
        emulated["float16"] = f"{sm} has no float16 arithmetic (native from sm_53)"
    if cc >= (8, 0):
        native.append("bfloat16")
    else:
        emulated["bfloat16"] = f"{sm} has no bfloat16 arithmetic (native from sm_80)"
    if cc >= (6, 1):
        native.append("int8")
    else:
        emulated["int8"] = f"{sm} has no int8 dot product (dp4a, from sm_61)"
    if cc >= (8, 9):
        native.append("fp8")
    else:
        emulated["fp8"] = f"{sm} has no float8 tensor cores (e4m3 from sm_89, Ada and Hopper)"
    return Precision(tuple(native), emulated)


#: OpenVINO OPTIMIZATION_CAPABILITIES entry of each dtype.
OPENVINO_CAPABILITIES = {"float32": "FP32", "float16": "FP16", "bfloat16": "BF16", "int8": "INT8"}


def capability_precision(capabilities: list[str], query: str,
                         fallback: Mapping[str, tuple[bool, str | None]] | None = None) -> Precision:
    """Native dtypes from a runtime's own capability query (e.g. OpenVINO's OPTIMIZATION_CAPABILITIES).

    ``fallback`` overrides single dtypes with ``(native, reason)`` decided
    elsewhere (OpenVINO's CPU reports INT8 on every x86 CPU, with or without
    VNNI, so its int8 comes from the CPU flags).
    """
    native, emulated = [], {}
    reported = ", ".join(capabilities) or "nothing"
    for dtype, name in OPENVINO_CAPABILITIES.items():
        if fallback and dtype in fallback:
            is_native, reason = fallback[dtype]
        else:
            is_native, reason = name in capabilities, f"{query} lacks {name} (reports {reported})"
        if is_native:
            native.append(dtype)
        else:
            emulated[dtype] = reason or f"{dtype} is not native"
    return Precision(tuple(native), emulated)


def precision_of(device_info: Mapping[str, Any] | None, dtype: str) -> dict[str, Any]:
    """The record's ``precision`` field: ``{dtype, native, reason}``; ``native`` is ``None``
    when the backend declares nothing for the device."""
    info = device_info or {}
    if dtype in PRECISIONS and PRECISIONS[dtype].kind == "weight-only":
        return {"dtype": dtype, "native": None,
                "reason": "a weight-only format: weights stored at fewer bits, unpacked by the runtime's own "
                          "kernels; it implies no device arithmetic at that width"}
    native = info.get("native_dtypes")
    if native is None:
        return {"dtype": dtype, "native": None, "reason": "the backend declares no native dtypes for this device"}
    if dtype in native:
        return {"dtype": dtype, "native": True, "reason": None}
    reason = (info.get("emulated_dtypes") or {}).get(dtype) or f"{dtype} is not among the device's native dtypes"
    return {"dtype": dtype, "native": False, "reason": reason}


def precision_warning(precision: Mapping[str, Any] | None) -> str | None:
    """``bfloat16 emulated: CPU lacks avx512_bf16/amx_bf16``, or ``None`` when native or undeclared."""
    if not precision or precision.get("native") is not False:
        return None
    return f"{precision['dtype']} emulated: {precision['reason']}"
