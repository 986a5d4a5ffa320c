"""Throughput per device against interactivity: the serving trade-off a buyer chooses a point on.

Every load point of a sweep (``--concurrency 1 2 4 8``, ``--qps ...``, or batch sizes of an
in-process LLM) is one :class:`OperatingPoint`: output tokens per second per device (what the
hardware earns) against output tokens per second per user, ``1 / median TPOT``
(InferenceX's *interactivity*; docs/measurement.md). More load raises the first and lowers
the second. A point is on the Pareto frontier when no other point of the same workload beats
it on both. Pure functions over typed records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from harness.contract.options import backend_label
from harness.hardware.catalog import device_count
from harness.results.record import Record, as_record, load_label, measurement_problem, workload_label


@dataclass(frozen=True)
class OperatingPoint:
    """One load point of one candidate, in the two figures the frontier plots."""

    #: What was chosen: backend, device and dtype (the candidate label less its batch size, so
    #: that the points of a batch sweep of an in-process model form one curve).
    candidate: str
    #: What was served, without the load point (``workload_label(load=False)``).
    workload: str
    #: ``concurrency=4``, ``qps=2.5``, ``b8`` for a batch of an in-process model, or both.
    load: str
    tokens_per_s_per_device: float
    user_tokens_per_s: float
    devices: int
    ttft_p99_s: float | None
    tpot_p99_s: float | None
    run_id: str | None
    record_key: str | None


def system_label(record: Record | Mapping[str, Any]) -> str:
    """``vllm[...]/endpoint float32``: a candidate label without the batch size."""
    spec = as_record(record).spec
    return f"{backend_label(spec)}/{spec['device']} {spec['dtype']}"


def user_tokens_per_s(record: Record | Mapping[str, Any]) -> float | None:
    """Output tokens per second one user sees: ``1 / median TPOT`` (None without a TPOT)."""
    tokens = as_record(record).tokens
    median = (tokens.tpot or {}).get("median_s") if tokens is not None else None
    return 1.0 / median if median else None


def _p99(stats: Mapping[str, Any] | None) -> float | None:
    return (stats or {}).get("p99_s")


def operating_point(record: Record | Mapping[str, Any]) -> OperatingPoint | None:
    """The record as a frontier point, or None when it has no token rate or no TPOT."""
    record = as_record(record)
    tokens, throughput = record.tokens, record.throughput
    if tokens is None:
        return None
    # The rank's throughput (the scenario's own basis) where it counts tokens, so the frontier's
    # cost labels and the ranking price the same figure; else the aggregate token rate.
    if throughput is not None and throughput.unit == "token/s" and throughput.value:
        rate = float(throughput.value)
    elif tokens.output_tokens_per_s is not None and tokens.output_tokens_per_s.value:
        rate = float(tokens.output_tokens_per_s.value)
    else:
        return None
    per_user = user_tokens_per_s(record)
    if per_user is None:
        return None
    devices = device_count(record.device_info)
    spec = record.spec
    point = load_label(record)
    batch = f"b{spec['batch_size']}" if spec["batch_size"] != 1 or not point else ""
    return OperatingPoint(system_label(record), workload_label(record, load=False),
                          " ".join(part for part in (point, batch) if part), rate / devices,
                          per_user, devices, _p99(tokens.ttft), _p99(tokens.tpot), record.run_id, record.key)


def operating_points(records: Iterable[Record | Mapping[str, Any]], catalog: Any = None) -> list[OperatingPoint]:
    """The frontier points of the records a ranking would trust (:func:`measurement_problem`)."""
    return [point for record in records if measurement_problem(record, catalog) is None
            and (point := operating_point(record)) is not None]


def pareto_frontier(points: Sequence[OperatingPoint]) -> list[OperatingPoint]:
    """The points no other point beats on both throughput per device and interactivity, in
    order of rising interactivity (so a line through them is the frontier)."""
    frontier = [p for p in points if not any(
        q.tokens_per_s_per_device >= p.tokens_per_s_per_device and q.user_tokens_per_s >= p.user_tokens_per_s
        and (q.tokens_per_s_per_device, q.user_tokens_per_s) != (p.tokens_per_s_per_device, p.user_tokens_per_s)
        for q in points)]
    return sorted(frontier, key=lambda p: p.user_tokens_per_s)
