"""pytest-benchmark interoperability: bakeoff runs as pytest-benchmark JSON.

``bakeoff export RUN --format pytest-benchmark -o run.json`` writes the file
``pytest-benchmark compare`` (and any tool that reads pytest-benchmark's
``--benchmark-json`` output) understands: one benchmark per ok record, its raw
latencies as ``data`` in seconds, the statistics computed the way
pytest-benchmark computes them (Tukey quartiles, 1.5 IQR fences), the run's
host as ``machine_info`` and its git commit as ``commit_info``. bakeoff's own
facts (throughput with its CI and unit, parity, timer, stopping rule) travel
in ``extra_info`` and ``options``.
"""

from __future__ import annotations

import statistics
from typing import Any, Mapping, Sequence

from harness.contract.errors import OK
from harness.contract.options import backend_label
from harness.results.record import Record, as_record, part_json


def _quartiles(data: Sequence[float]) -> tuple[float, float, float]:
    """pytest-benchmark's quartiles (sorted ``data``): Wikipedia's method 3 for an odd count,
    method 2 (medians of the halves) for an even one."""
    n = len(data)
    if n == 1:
        return data[0], data[0], data[0]
    if n % 2 == 0:
        return statistics.median(data[: n // 2]), statistics.median(data), statistics.median(data[n // 2:])
    m, r = n // 4, n % 4
    if r == 1:
        q1, q3 = 0.25 * data[m - 1] + 0.75 * data[m], 0.75 * data[3 * m] + 0.25 * data[3 * m + 1]
    else:
        q1, q3 = 0.75 * data[m] + 0.25 * data[m + 1], 0.25 * data[3 * m + 1] + 0.75 * data[3 * m + 2]
    return q1, statistics.median(data), q3


def benchmark_stats(samples_s: Sequence[float]) -> dict[str, Any]:
    """The ``stats`` block of one pytest-benchmark benchmark, from raw samples in seconds."""
    data = sorted(samples_s)
    n = len(data)
    mean = statistics.fmean(data)
    stddev = statistics.stdev(data) if n > 1 else 0.0
    q1, median, q3 = _quartiles(data)
    iqr = q3 - q1
    low_fence, high_fence = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    iqr_outliers = sum(1 for v in data if v < low_fence or v > high_fence)
    stddev_outliers = sum(1 for v in data if v < mean - stddev or v > mean + stddev)
    return {
        "min": data[0], "max": data[-1], "mean": mean, "stddev": stddev, "rounds": n, "median": median,
        "iqr": iqr, "q1": q1, "q3": q3, "iqr_outliers": iqr_outliers, "stddev_outliers": stddev_outliers,
        "outliers": f"{stddev_outliers};{iqr_outliers}",
        "ld15iqr": next(v for v in data if v >= low_fence), "hd15iqr": next(v for v in reversed(data) if v <= high_fence),
        "ops": 1 / mean if mean > 0 else 0.0, "total": sum(data), "iterations": 1,
        "data": list(samples_s),
    }


def _machine_info(manifest: Mapping[str, Any]) -> dict[str, Any]:
    host = manifest.get("host") or {}
    cpu = host.get("cpu") or {}
    return {
        "node": host.get("hostname"), "processor": cpu.get("model") or "", "machine": cpu.get("architecture"),
        "python_implementation": "CPython", "python_version": host.get("python"), "system": host.get("os"),
        "release": host.get("os_release") or "",
        "cpu": {"brand_raw": cpu.get("model"), "vendor_id_raw": cpu.get("vendor"), "count": cpu.get("logical_cores"),
                "arch_string_raw": cpu.get("architecture")},
        "bakeoff": {"run_id": manifest.get("run_id"), "version": manifest.get("bakeoff_version"),
                    "memory_bytes": host.get("memory_bytes"), "packages": host.get("packages") or {}},
    }


def _name(record: Record) -> str:
    """pytest-benchmark's ``test[params]`` shape of the shared labels, so its compare lines up."""
    spec = record.spec
    params = ",".join(f"{k}={v}" for k, v in sorted((spec.get("params") or {}).items()))
    return (f"{backend_label(spec)}/{spec['device']}::{spec['workload']}"
            f"[{params}{',' if params else ''}{spec['dtype']},b{spec['batch_size']},{spec.get('scenario', 'single-stream')}]")


def to_pytest_benchmark(
    runs: Sequence[tuple[Mapping[str, Any], Sequence[Record | Mapping[str, Any]]]],
) -> dict[str, Any]:
    """One pytest-benchmark JSON document from ``[(manifest, records), ...]`` (normally one run)."""
    try:
        from importlib.metadata import version

        pb_version = version("pytest-benchmark")
    except Exception:  # noqa: BLE001 - the format is stable; any 4.x/5.x reader takes it
        pb_version = "5.1.0"
    manifest = runs[0][0]
    git = manifest.get("git") or {}
    benchmarks = []
    for _, records in runs:
        for record in map(as_record, records):
            latencies = (record.measurement or {}).get("latencies_ns") or []
            if record.status != OK or not latencies:
                continue
            spec = record.spec
            stopping = spec.get("stopping") or {}
            name = _name(record)
            benchmarks.append({
                "group": f"{spec['workload']} {spec.get('scenario', 'single-stream')}",
                "name": name, "fullname": f"bakeoff/{record.run_id}/{name}",
                "params": {**(spec.get("params") or {}), "dtype": spec["dtype"], "batch_size": spec["batch_size"]},
                "param": f"{spec['dtype']}-b{spec['batch_size']}",
                "extra_info": {"throughput": part_json(record.throughput), "unit": record.unit,
                               "parity_passed": record.parity.passed if record.parity is not None else None,
                               "key": record.key, "host": record.host,
                               "ci_half_width": (record.stopping or {}).get("achieved_ci")},
                "options": {"disable_gc": False, "timer": (record.measurement or {}).get("timer"),
                            "min_rounds": stopping.get("min_iterations"), "max_time": stopping.get("max_duration_s"),
                            "min_time": 0.0, "precision": None, "confidence": None,
                            "warmup": bool(stopping.get("warmup"))},
                "stats": benchmark_stats([v / 1e9 for v in latencies]),
            })
    return {
        "machine_info": _machine_info(manifest),
        "commit_info": {"id": git.get("commit") or "", "dirty": bool(git.get("dirty")), "project": "bakeoff",
                        "branch": git.get("branch") or "", "time": manifest.get("started_at")},
        "benchmarks": benchmarks,
        "datetime": manifest.get("started_at"),
        "version": pb_version,
    }
