"""Run-time plausibility: a rate the device cannot physically reach is a wrong measurement.

The conformance kit (harness/testing.py) catches a backend whose
``synchronize()`` returns early, but only when someone runs it. ``bakeoff
run`` once recorded 3108 TFLOP/s for gemm on a 2-core CPU as ``ok``, parity
passed. So every ``ok`` record is checked against the device's known peak,
and one that exceeds it is marked ``implausible``, with the reason, and is
never ranked or compared (``harness.results.record``).

Checks (each ``ok``, ``implausible`` or ``not checked`` with why):

* **compute**: achieved FLOP/s (``FLOP`` workloads directly; others through
  ``Workload.flops_per_step`` where the workload can say) against the peak
  FLOP/s at the record's dtype.
* **bandwidth**: achieved B/s of a ``B`` workload (``membw``) against the
  device's memory bandwidth.
* **memory**: a reported device peak memory below the workload's own weights
  plus inputs cannot be a byte count of this run.

Peaks are injected (:func:`assess` is pure). They come from the device's own
declaration (``DeviceInfo.peaks``; for a CPU :func:`cpu_peaks`, cores x
clock x FLOP per cycle of the widest unit) and from the catalog's figures for
the matched device (:func:`catalog_peaks`); where both know, the larger
counts. Every figure is deliberately generous (maximum clock, logical CPUs,
AMX where present, :data:`SLACK` on top): the point is to catch impossible
numbers, not to estimate, so a correct measurement is never flagged.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from harness.contract.precisions import PRECISIONS
from harness.contract.units import format_bytes, format_rate
from harness.hardware.precision import ARM_MACHINES, X86_MACHINES, CpuFeatures

#: Headroom above a peak before a rate counts as impossible: catalog figures are rounded
#: datasheet numbers, and a clock may briefly exceed its nominal boost.
SLACK = 1.10
#: The clock assumed when the OS reports no maximum (VMs often do not): above the highest
#: boost clock of any shipping CPU (6.2 GHz, Core i9-14900KS), so the bound stays generous.
ASSUMED_MAX_HZ = 6.2e9
KNOWN = ("ok", "implausible", "not checked")


# -- CPU peaks: cores x clock x FLOP per cycle ---------------------------------------------------

def flop_per_cycle(features: CpuFeatures) -> dict[str, tuple[float, str]] | None:
    """Peak FLOP (int8: integer ops) per cycle per core for each dtype, and the unit that gives it.

    x86: two vector FMA pipes per core (the most any x86 core has), an FMA
    counted as 2 FLOP; AMX tiles at Intel's published 1024 bf16/fp16 FLOP and
    2048 int8 ops per cycle. aarch64: four 128-bit pipes (Neoverse V2), SVE
    assumed 512 bits wide (its width is not in the flags; 512 is the widest
    built), SME as a 2048 FLOP/cycle matrix unit. A dtype without a native
    unit runs through float32, so its peak is the float32 one. ``None`` for
    other architectures.
    """
    flags = features.flags
    if features.architecture in X86_MACHINES:
        bits = 512 if "avx512f" in flags else 256 if "avx" in flags else 128
        name = "avx512f" if bits == 512 else "avx/avx2" if bits == 256 else "sse"
        fp32 = (2.0 * bits / 32 * 2, f"{name}: 2 x {bits}-bit FMA pipes")
        table = {"float32": fp32}
        table["float16"] = ((1024.0, "amx_fp16 tiles") if "amx_fp16" in flags else
                            (2.0 * 512 / 16 * 2, "avx512_fp16: 2 x 512-bit FMA pipes")
                            if "avx512_fp16" in flags else fp32)
        table["bfloat16"] = ((1024.0, "amx_bf16 tiles") if "amx_bf16" in flags else
                             (2.0 * 512 / 16 * 2, "avx512_bf16: 2 x 512-bit dot-product pipes")
                             if "avx512_bf16" in flags else fp32)
        table["int8"] = ((2048.0, "amx_int8 tiles") if "amx_int8" in flags else
                         (2.0 * 512 / 8 * 2, "avx512_vnni: 2 x 512-bit pipes") if "avx512_vnni" in flags else
                         (2.0 * 256 / 8 * 2, "avx_vnni: 2 x 256-bit pipes") if "avx_vnni" in flags else
                         (2.0 * bits / 8 * 2, f"{name}: 2 x {bits}-bit integer pipes"))
        return table
    if features.architecture in ARM_MACHINES:
        bits = 512 if "sve" in flags else 128
        name = "sve (assumed 512-bit)" if bits == 512 else "asimd"
        base = 4.0 * bits / 32 * 2
        fp32 = (base, f"{name}: 4 x {bits}-bit FMA pipes")
        table = {
            "float32": fp32,
            "float16": (2 * base, f"{name} fp16: 4 x {bits}-bit") if flags & {"fphp", "asimdhp"} else fp32,
            "bfloat16": (4 * base, f"{name} bf16 matrix multiply") if "bf16" in flags else fp32,
            "int8": ((8 * base, f"{name} i8mm") if "i8mm" in flags else
                     (4 * base, f"{name} dot product") if "asimddp" in flags else fp32),
        }
        if "sme" in flags:  # a matrix unit beside the vector pipes
            table = {dtype: max(entry, (4096.0 if dtype == "int8" else 2048.0, "sme matrix unit"))
                     for dtype, entry in table.items()}
        return table
    return None


def cpu_peaks(features: CpuFeatures | None, cpus: int | None, max_clock_hz: float | None,
              clock_source: str) -> dict[str, Any]:
    """``DeviceInfo.peaks`` of a CPU: ``cpus x max_clock_hz x flop_per_cycle`` per dtype, each with
    its formula; empty when an input is unknown. A CPU declares no memory bandwidth (the flags
    do not give one)."""
    table = flop_per_cycle(features) if features is not None else None
    if not table or not cpus or not max_clock_hz:
        return {}
    flops = {
        dtype: {"value": cpus * max_clock_hz * per_cycle,
                "basis": f"{cpus} CPUs x {max_clock_hz / 1e9:.3g} GHz x {per_cycle:g} "
                         f"{'op' if dtype == 'int8' else 'FLOP'}/cycle, {unit}"}
        for dtype, (per_cycle, unit) in table.items()
    }
    return {
        "flop_per_s": flops,
        "bytes_per_s": None,
        "inputs": {"cpus": cpus, "max_clock_hz": max_clock_hz, "clock_source": clock_source,
                   "architecture": features.architecture,
                   "flop_per_cycle_per_core": {dtype: {"value": v, "unit": u} for dtype, (v, u) in table.items()},
                   "formula": "CPUs x max clock x FLOP per cycle per core (FMA = 2 FLOP; int8: integer ops)"},
    }


def read_max_clock_hz(read: Callable[[str], str] | None = None,
                      current_mhz: float | None = None) -> tuple[float, str]:
    """The CPU's maximum clock and where it came from: cpufreq's ``cpuinfo_max_freq`` where the
    OS has one, else :data:`ASSUMED_MAX_HZ` (or the current clock, if that is higher)."""
    path = "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"
    try:
        khz = float((read or (lambda p: Path(p).read_text()))(path).strip())
        if khz > 0:
            return khz * 1e3, f"{path} ({khz:g} kHz)"
    except (OSError, ValueError):
        pass
    if current_mhz and current_mhz * 1e6 > ASSUMED_MAX_HZ:
        return current_mhz * 1e6, f"/proc/cpuinfo cpu MHz ({current_mhz:g}; no cpufreq maximum)"
    return ASSUMED_MAX_HZ, (f"no cpufreq maximum reported (a VM?); assumed {ASSUMED_MAX_HZ / 1e9:g} GHz, "
                            "above any shipping CPU's boost clock")


def host_cpu_peaks(features: CpuFeatures | None) -> dict[str, Any]:
    """The host CPU's peaks from this machine's facts: logical CPUs (``os.cpu_count()``; SMT
    siblings share pipes, so this over-counts, generously) and the maximum clock."""
    clock, source = read_max_clock_hz()
    return cpu_peaks(features, os.cpu_count(), clock, source)


# -- catalog peaks -------------------------------------------------------------------------------

def catalog_entry(catalog: Any, model: str | None) -> Mapping[str, Any] | None:
    """The catalog entry for ``model`` (``Catalog.match``: a pattern must name the whole model
    number, so "H20" never lends its peak to an H200)."""
    return catalog.match(model) if model else None


def catalog_peaks(entry: Mapping[str, Any] | None) -> dict[str, Any]:
    """Peaks from a catalog entry's figures: dense fp16 TFLOP/s bounds every float dtype (no
    device computes float32 or bfloat16 faster than its dense fp16 rate), dense int8 TOP/s
    bounds int8, and memory_bandwidth_gbps (decimal GB/s) bounds bytes/s."""
    from harness.hardware.catalog import figure

    if not entry:
        return {}
    at = f"catalog {entry.get('id')}"
    flops: dict[str, dict[str, Any]] = {}
    fp16, int8 = figure(entry, "fp16_dense_tflops"), figure(entry, "int8_dense_tops")
    if fp16:
        for dtype in ("float32", "float16", "bfloat16"):
            flops[dtype] = {"value": fp16 * 1e12, "basis": f"{at} fp16_dense_tflops = {fp16:g}"}
    if int8:
        flops["int8"] = {"value": int8 * 1e12, "basis": f"{at} int8_dense_tops = {int8:g}"}
    bandwidth = figure(entry, "memory_bandwidth_gbps")
    return {
        "flop_per_s": flops,
        "bytes_per_s": {"value": bandwidth * 1e9, "basis": f"{at} memory_bandwidth_gbps = {bandwidth:g}"}
        if bandwidth else None,
    }


def merge_peaks(*sources: Mapping[str, Any]) -> dict[str, Any]:
    """One peak per quantity: the largest any source gives (generous), with its basis."""
    flops: dict[str, dict[str, Any]] = {}
    bandwidth = None
    for source in sources:
        for dtype, peak in ((source or {}).get("flop_per_s") or {}).items():
            if peak and (dtype not in flops or peak["value"] > flops[dtype]["value"]):
                flops[dtype] = dict(peak)
        peak = (source or {}).get("bytes_per_s")
        if peak and (bandwidth is None or peak["value"] > bandwidth["value"]):
            bandwidth = dict(peak)
    return {"flop_per_s": flops, "bytes_per_s": bandwidth}


@functools.lru_cache(maxsize=1)
def _builtin_catalog():
    from harness.hardware.catalog import load_catalog

    return load_catalog(())


def scaled(peaks: Mapping[str, Any], devices: int) -> dict[str, Any]:
    """Peaks of ``devices`` devices together (a candidate such as an endpoint on "8x H100")."""
    if devices == 1 or not peaks:
        return dict(peaks)

    def times(peak):
        return {"value": peak["value"] * devices, "basis": f"{devices} x {peak['basis']}"} if peak else None

    return {"flop_per_s": {dtype: times(p) for dtype, p in (peaks.get("flop_per_s") or {}).items()},
            "bytes_per_s": times(peaks.get("bytes_per_s"))}


def known_peaks(device_info: Mapping[str, Any] | None, catalog: Any = None) -> dict[str, Any]:
    """The device's declared peaks merged with the catalog's (the built-in one unless given),
    the catalog's per-device figures times the candidate's device count."""
    from harness.hardware.catalog import device_count

    info = device_info or {}
    entry = catalog_entry(catalog if catalog is not None else _builtin_catalog(), info.get("model"))
    return merge_peaks(info.get("peaks") or {}, scaled(catalog_peaks(entry), device_count(info)))


# -- the check -----------------------------------------------------------------------------------

def _check(name: str, verdict: str, reason: str, **facts: Any) -> dict[str, Any]:
    return {"check": name, "verdict": verdict, "reason": reason, **facts}


def _rate_check(name: str, achieved: float, peak: Mapping[str, Any] | None, unit: str, what: str,
                cause: str) -> dict[str, Any]:
    if not peak:
        return _check(name, "not checked", f"no known {what} for this device")
    value = float(peak["value"])
    facts = {"achieved": achieved, "peak": value, "unit": unit, "basis": peak.get("basis")}
    text = f"{format_rate(achieved, unit)} exceeds this device's {what} of {format_rate(value, unit)}"
    if achieved > value * SLACK:
        return _check(name, "implausible", f"{text} ({peak.get('basis')}): {cause}", **facts)
    return _check(name, "ok", f"{format_rate(achieved, unit)} is {achieved / value:.1%} of this device's "
                              f"{what} of {format_rate(value, unit)} ({peak.get('basis')})", **facts)


def compute_peak(peaks: Mapping[str, Any], dtype: str) -> tuple[Mapping[str, Any] | None, str]:
    """The peak a record at ``dtype`` is held to, and its label. A weight-only format (int4,
    q4_0...) computes in whatever unit the runtime picks (llama.cpp dots 4-bit blocks with int8
    instructions), so it is bounded by the device's fastest declared rate, never by none."""
    flops = peaks.get("flop_per_s") or {}
    if dtype in flops or dtype not in PRECISIONS or PRECISIONS[dtype].kind != "weight-only" or not flops:
        return flops.get(dtype), f"{dtype} peak"
    fastest = max(flops, key=lambda name: flops[name]["value"])
    return flops[fastest], f"fastest peak ({fastest}; {dtype} is weight-only)"


def assess(*, unit: str | None, dtype: str, throughput_per_s: float | None, work_per_step: float | None,
           flops_per_step: float | None, peaks: Mapping[str, Any], device_peak_bytes: int | None = None,
           weight_bytes: int | None = None, input_bytes: int | None = None) -> dict[str, Any]:
    """The record's ``plausibility``: ``{verdict, reason, checks}``, verdict ``implausible`` when any
    check is, ``ok`` when at least one passed, else ``not checked``. Pure: the peaks are given.

    ``throughput_per_s`` is in the workload's ``unit`` per second.
    """
    checks = []
    achieved_flops = None
    if throughput_per_s is not None:
        if unit == "FLOP":
            achieved_flops = throughput_per_s
        elif flops_per_step and work_per_step:
            achieved_flops = throughput_per_s * flops_per_step / work_per_step
    if throughput_per_s is None:
        checks.append(_check("compute", "not checked", "no throughput measured"))
    elif achieved_flops is not None:
        peak, label = compute_peak(peaks, dtype)
        checks.append(_rate_check("compute", achieved_flops, peak, "FLOP/s", label,
                                  "synchronize() probably returns before the work is done"))
    elif unit == "B":
        checks.append(_rate_check("bandwidth", throughput_per_s, peaks.get("bytes_per_s"), "B/s",
                                  "memory bandwidth", "synchronize() probably returns before the work is "
                                  "done (or the buffer fits in a cache)"))
    else:
        checks.append(_check("compute", "not checked", f"the workload gives no FLOPs or bytes per {unit}"))

    own = None if weight_bytes is None and input_bytes is None else (weight_bytes or 0) + (input_bytes or 0)
    if device_peak_bytes is None:
        checks.append(_check("memory", "not checked", "the runtime reports no device peak memory"))
    elif not own:
        checks.append(_check("memory", "not checked", "the workload's weight and input bytes are unknown"))
    else:
        facts = {"device_peak_bytes": device_peak_bytes, "own_bytes": own}
        if device_peak_bytes < own:
            checks.append(_check("memory", "implausible",
                                 f"device peak memory {format_bytes(device_peak_bytes)} is below the workload's "
                                 f"own weights + inputs ({format_bytes(own)}): peak_memory_bytes() probably "
                                 "reports another unit or another counter", **facts))
        else:
            checks.append(_check("memory", "ok", f"device peak {format_bytes(device_peak_bytes)} holds the "
                                                 f"workload's own {format_bytes(own)}", **facts))
    bad = [c for c in checks if c["verdict"] == "implausible"]
    verdict = "implausible" if bad else "ok" if any(c["verdict"] == "ok" for c in checks) else "not checked"
    reason = "; ".join(c["reason"] for c in (bad or checks))
    return {"verdict": verdict, "reason": reason, "checks": checks}


def assess_record(record: Mapping[str, Any], catalog: Any = None) -> dict[str, Any] | None:
    """:func:`assess` on a built record (``None`` unless it is ``ok``), peaks from
    :func:`known_peaks`."""
    if record.get("status") != "ok":
        return None
    throughput = record.get("throughput") or {}
    unit = record.get("unit")
    rate = throughput.get("value") if throughput.get("unit") == f"{unit}/s" else None
    memory = record.get("memory") or {}
    return assess(unit=unit, dtype=(record.get("spec") or {}).get("dtype"), throughput_per_s=rate,
                  work_per_step=record.get("work_per_step"), flops_per_step=record.get("flops_per_step"),
                  peaks=known_peaks(record.get("device_info"), catalog),
                  device_peak_bytes=memory.get("device_peak_bytes"), weight_bytes=memory.get("weight_bytes"),
                  input_bytes=memory.get("input_bytes"))
