"""The memory-bandwidth roofline of LLM decode.

Decode reads every weight (and the KV cache) once per step, so its ceiling
is the device's *read* bandwidth as the ``membw`` workload measures it on the
same machine. ``roofline_fraction`` = decode tokens/s x bytes moved per token
/ measured read bandwidth, where bytes per token count weights plus KV cache
(``Llm.bytes_per_decode_step`` / batch size).

A device is identified by host name and device model, so ``torch/cpu`` and
``onnxruntime/CPUExecutionProvider`` on one machine share the same ceiling;
the ceiling is the best rankable ``membw`` read result among the records
given.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from harness.results.record import Record, as_record, rankable


def device_identity(record: Record | Mapping[str, Any]) -> tuple[str | None, str | None]:
    record = as_record(record)
    return record.host, (record.device_info or {}).get("model")


def read_ceilings(records: Iterable[Record | Mapping[str, Any]]) -> dict[tuple[str | None, str | None], float]:
    """Best measured read bandwidth (B/s) per device, from rankable ``membw`` read records."""
    ceilings: dict[tuple[str | None, str | None], float] = {}
    for record in records:
        typed = as_record(record)
        if typed.spec.get("workload") != "membw" or (typed.spec.get("params") or {}).get("mode") != "read":
            continue
        if typed.throughput is None or not typed.throughput.value or not rankable(record):
            continue
        key = device_identity(typed)
        ceilings[key] = max(ceilings.get(key, 0.0), typed.throughput.value)
    return ceilings


def roofline_fraction(record: Record | Mapping[str, Any], ceilings: Mapping[tuple, float]) -> tuple[float, float] | None:
    """(fraction, ceiling B/s) for an LLM record, or ``None`` without a ceiling for its device."""
    typed = as_record(record)
    achieved = typed.tokens.decode_bytes_per_s if typed.tokens is not None else None
    ceiling = ceilings.get(device_identity(typed))
    if not achieved or not ceiling:
        return None
    return achieved / ceiling, ceiling
