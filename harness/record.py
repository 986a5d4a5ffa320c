"""What a result record means to its readers: one label, and one definition each of a
record that may be ranked, charted or compared.

The record itself is written by harness/results.py (``build_record``) and
documented in docs/results.md. Every reader (tables, compare, rank, report,
roofline, export) used to name a benchmark and judge a record its own way:
five label formats, four definitions of "usable", so the HTML report charted
records that failed parity. They ask here instead.

* :func:`measurement_problem` (ranked and charted records): ran, passed
  parity, plausible, and valid for its scenario.
* :func:`comparison_problem` (compared records): ran, passed parity,
  plausible. A scenario-invalid result (too short, SLO missed) still has a
  latency distribution worth comparing; its invalidity is shown beside it.
"""

from __future__ import annotations

from typing import Any, Mapping

from harness.options import backend_label

#: Record statuses. Only "ok" records carry a measurement and can be ranked.
OK, FAILED, UNSUPPORTED, UNAVAILABLE = "ok", "failed", "unsupported", "unavailable"
STATUSES = (OK, FAILED, UNSUPPORTED, UNAVAILABLE)


def candidate_label(record: Mapping[str, Any]) -> str:
    """``torch[graph=compile]/cuda:0 bfloat16 b8``: what ran, the thing a buyer chooses between."""
    spec = record["spec"]
    return f"{backend_label(spec)}/{spec['device']} {spec['dtype']} b{spec['batch_size']}"


def workload_label(record: Mapping[str, Any]) -> str:
    """``gemm size=1024 server``: what was run, with the scenario and its non-default settings."""
    spec = record["spec"]
    params = ",".join(f"{k}={v}" for k, v in sorted((spec.get("params") or {}).items()))
    settings = ",".join(f"{k}={v}" for k, v in sorted((spec.get("scenario_options") or {}).items()))
    scenario = spec.get("scenario", "single-stream") + (f"[{settings}]" if settings else "")
    return " ".join(part for part in (spec["workload"], params, scenario) if part)


def benchmark_label(record: Mapping[str, Any]) -> str:
    """One benchmark, for lists that mix workloads: candidate, then workload."""
    return f"{candidate_label(record)} {workload_label(record)}"


def _implausibility(record: Mapping[str, Any], catalog: Any = None, recheck: bool = True) -> str | None:
    from harness.plausibility import assess_record

    verdicts = [record.get("plausibility") or {}]
    if recheck:  # a --catalog may know a device (and its peak) that the run's built-in one did not
        verdicts.append(assess_record(record, catalog) or {})
    for verdict in verdicts:
        if verdict.get("verdict") == "implausible":
            return f"implausible: {verdict.get('reason')}"
    return None


def comparison_problem(record: Mapping[str, Any]) -> str | None:
    """Why this record's samples cannot be compared with another run's, or ``None``:
    ``failed``, ``ok (parity failed)``, ``ok (implausible)``."""
    text = str(record.get("status"))
    if (record.get("parity") or {}).get("passed") is False:
        text += " (parity failed)"
    if _implausibility(record, recheck=False):
        text += " (implausible)"
    return None if text == "ok" else text


def measurement_problem(record: Mapping[str, Any], catalog: Any = None) -> str | None:
    """Why this record's numbers may not be ranked or charted, or ``None`` when they may.

    It ran (``ok``), passed parity, is not implausible (re-checked against
    ``catalog``, the built-in one when ``None``) and its scenario result is
    valid. A chart of a wrong number misleads as much as a ranking of it.
    """
    if record.get("status") != "ok":
        return f"status {record.get('status')}: {record.get('reason')}"
    parity = record.get("parity") or {}
    if parity.get("passed") is False:
        return f"parity failed: {parity.get('reason')}"
    implausible = _implausibility(record, catalog)
    if implausible:
        return implausible
    scenario = record.get("scenario") or {}
    if scenario.get("valid") is False:
        return f"invalid {scenario.get('name')} result: {scenario.get('validity_reason')}"
    return None


def rankable(record: Mapping[str, Any]) -> bool:
    """Whether the record's numbers may be ranked and charted (:func:`measurement_problem`)."""
    return measurement_problem(record) is None
