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


def device_identity(record: Mapping[str, Any]) -> tuple[str | None, str | None]:
    return record.get("host"), (record.get("device_info") or {}).get("model")


def read_ceilings(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str | None, str | None], float]:
    """Best measured read bandwidth (B/s) per device, from rankable ``membw`` read records."""
    from harness.results.record import rankable

    ceilings: dict[tuple[str | None, str | None], float] = {}
    for record in records:
        spec = record["spec"]
        if spec.get("workload") != "membw" or (spec.get("params") or {}).get("mode") != "read":
            continue
        if not rankable(record) or not record.get("throughput"):
            continue
        key = device_identity(record)
        ceilings[key] = max(ceilings.get(key, 0.0), record["throughput"]["value"])
    return ceilings


def roofline_fraction(record: Mapping[str, Any], ceilings: Mapping[tuple, float]) -> tuple[float, float] | None:
    """(fraction, ceiling B/s) for an LLM record, or ``None`` without a ceiling for its device."""
    achieved = (record.get("tokens") or {}).get("decode_bytes_per_s")
    ceiling = ceilings.get(device_identity(record))
    if not achieved or not ceiling:
        return None
    return achieved / ceiling, ceiling
