"""Token metrics of generative workloads from per-token timestamps, as pure functions
(vLLM's definitions, docs/measurement.md)."""

from __future__ import annotations

from typing import Any

from harness.analysis.stats import summarize


def token_metrics(offsets_ns: list[list[int]], batch_size: int) -> dict[str, Any]:
    """TTFT, TPOT, ITL and E2E from per-request token timestamps (ns from the request's start).

    Definitions (vLLM's, docs/measurement.md): TTFT = first token; E2E = last
    token; TPOT per request = (E2E - TTFT) / (tokens - 1); ITL = every gap
    between consecutive tokens, pooled (TTFT is not an ITL gap).
    """
    ttft = [marks[0] for marks in offsets_ns]
    e2e = [marks[-1] for marks in offsets_ns]
    tpot = [(marks[-1] - marks[0]) / (len(marks) - 1) for marks in offsets_ns if len(marks) > 1]
    itl = [b - a for marks in offsets_ns for a, b in zip(marks, marks[1:])]

    def seconds(samples: list[float]) -> dict[str, Any] | None:
        if not samples:
            return None
        summary = summarize(samples)
        return {
            "count": summary.count,
            **{f"{k}_s": (v / 1e9 if v is not None else None) for k, v in summary.to_dict().items()
               if k in ("median", "mean", "p50", "p90", "p99", "median_ci_low", "median_ci_high")},
        }

    metrics: dict[str, Any] = {"ttft": seconds(ttft), "tpot": seconds(tpot), "itl": seconds(itl),
                               "e2e": seconds(e2e)}
    tokens = len(offsets_ns[0]) if offsets_ns else 0
    e2e_stats, tpot_stats = metrics["e2e"], metrics["tpot"]
    if e2e_stats:
        metrics["output_tokens_per_s"] = {
            "value": batch_size * tokens / e2e_stats["median_s"],
            "ci_low": batch_size * tokens / e2e_stats["median_ci_high_s"] if e2e_stats["median_ci_high_s"] else None,
            "ci_high": batch_size * tokens / e2e_stats["median_ci_low_s"] if e2e_stats["median_ci_low_s"] else None,
            "unit": "token/s",
            "basis": "batch x generated tokens / median E2E",
        }
    if tpot_stats:
        metrics["decode_tokens_per_s"] = {
            "value": batch_size / tpot_stats["median_s"],
            "ci_low": batch_size / tpot_stats["median_ci_high_s"] if tpot_stats["median_ci_high_s"] else None,
            "ci_high": batch_size / tpot_stats["median_ci_low_s"] if tpot_stats["median_ci_low_s"] else None,
            "unit": "token/s",
            "basis": "batch / median TPOT",
        }
    return metrics
