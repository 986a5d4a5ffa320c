"""Token metrics of generative workloads from per-token timestamps, as pure functions
(vLLM's definitions, docs/measurement.md)."""

from __future__ import annotations

from typing import Any, Sequence

from harness.analysis.stats import summarize


def time_per_output_token(marks: Sequence[int], tokens: int | None = None) -> float | None:
    """(last mark - first mark) / (tokens - 1), in the marks' unit: the decode time per token
    after the first. ``tokens`` defaults to one per mark; ``None`` when there is no gap."""
    count = tokens or len(marks)
    if len(marks) < 2 or count < 2:
        return None
    return (marks[-1] - marks[0]) / (count - 1)


def token_metrics(offsets_ns: Sequence[Sequence[int]], batch_size: int,
                  token_counts: Sequence[int | None] | None = None, elapsed_ns: int | None = None,
                  answer_marks: Sequence[int | None] | None = None) -> dict[str, Any]:
    """TTFT, TPOT, ITL and E2E from per-request mark times (ns from the request's start), and
    the token rates.

    Definitions (vLLM's, docs/measurement.md): TTFT = first mark; E2E = last mark;
    TPOT per request = (E2E - TTFT) / (tokens - 1), tokens being the request's own count
    (``token_counts``: a server's usage) or one per mark; ITL = every gap between
    consecutive marks, pooled (TTFT is not an ITL gap). ``output_tokens_per_s`` is the
    aggregate, batch x every request's tokens over the wall time of the timed span
    (``elapsed_ns``), so under concurrent load it is the whole server's rate, not one
    stream's; ``decode_tokens_per_s`` is one stream's (batch / median TPOT).

    For a reasoning model (``answer_marks``: per request the mark of the first answer token,
    ``None`` for the first mark) ``ttfa`` is the time to the first answer token, AIPerf's
    "TTFO"; TTFT stays the first token of any kind, reasoning included.
    """
    counts = [(c if c else len(marks)) for c, marks in
              zip(token_counts if token_counts is not None else [None] * len(offsets_ns), offsets_ns)]
    ttft = [marks[0] for marks in offsets_ns if marks]
    e2e = [marks[-1] for marks in offsets_ns if marks]
    tpot = [value for marks, count in zip(offsets_ns, counts)
            if (value := time_per_output_token(marks, count)) is not None]
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
    if answer_marks is not None:  # a mark past the last: the reply only reasoned, no first answer to time
        metrics["ttfa"] = seconds([marks[index or 0] for marks, index in zip(offsets_ns, answer_marks)
                                   if marks and (index or 0) < len(marks)])
    tpot_stats = metrics["tpot"]
    if elapsed_ns and counts:
        seconds_total = elapsed_ns / 1e9
        metrics["output_tokens_per_s"] = {
            "value": batch_size * sum(counts) / seconds_total, "ci_low": None, "ci_high": None, "unit": "token/s",
            "basis": "batch x tokens of every request / wall time of the timed span (aggregate over concurrent "
                     "requests)",
        }
        metrics["requests_per_s"] = len(counts) / seconds_total
    if tpot_stats:
        metrics["decode_tokens_per_s"] = {
            "value": batch_size / tpot_stats["median_s"],
            "ci_low": batch_size / tpot_stats["median_ci_high_s"] if tpot_stats["median_ci_high_s"] else None,
            "ci_high": batch_size / tpot_stats["median_ci_low_s"] if tpot_stats["median_ci_low_s"] else None,
            "unit": "token/s",
            "basis": "batch / median TPOT",
        }
    metrics["output_tokens"] = {"total": sum(counts), "per_request_min": min(counts) if counts else None,
                                "per_request_max": max(counts) if counts else None}
    return metrics
