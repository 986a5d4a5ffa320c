"""Every figure and warning of a record, derived from a benchmark's identity and the raw
outcome its worker reported, in one place (:func:`derive`).

Pure functions of JSON mappings: no engine, no files. Re-deriving an old record gives the
figures it holds (tests/test_record.py), so a change here shows as a changed number.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from harness.analysis.stats import median_rate, stability_warnings, summarize
from harness.analysis.tokens import token_metrics
from harness.hardware.plausibility import assess_record
from harness.hardware.precision import precision_of, precision_warning
from harness.results.record import OK, RECORD_KIND, SCHEMA_VERSION, Record


def _finite(value: float | None) -> float | None:
    return None if value is None or value != value or value in (float("inf"), float("-inf")) else value


def latency_stats(latencies_ns: Sequence[int]) -> dict[str, Any]:
    """The record's ``stats``: the raw latencies' summary in seconds (harness/analysis/stats.py)."""
    summary = summarize(latencies_ns)
    stats = {f"{k}_s": (_finite(v) / 1e9 if v is not None else None) for k, v in summary.to_dict().items()
             if k not in ("count", "cv", "outliers", "ci_method", "ci_level")}
    stats.update(count=summary.count, cv=_finite(summary.cv), outliers=summary.outliers,
                 ci_method=summary.ci_method, ci_level=summary.ci_level)
    return stats


def interference_warning(interference: Mapping[str, Any] | None) -> str | None:
    """The record warning for a noisy result, else ``None``."""
    if not interference or not interference.get("noisy"):
        return None
    load = interference.get("loadavg_1m")
    return ("interference: " + "; ".join(interference.get("reasons") or [])
            + (f"; load average {load:.2f}" if load is not None else "")
            + ": this machine was not the benchmark's own, so its numbers may be distorted")


def _warnings(outcome: Mapping[str, Any], summary_warnings: list[str]) -> list[str]:
    """Every caveat a reader needs beside the numbers, most serious first."""
    warnings = list(summary_warnings)
    stopping = outcome.get("stopping") or {}
    if stopping.get("mode") == "adaptive" and not stopping.get("target_reached"):
        achieved = stopping.get("achieved_ci")
        warnings.append(f"CI target not reached: ±{achieved:.1%} > ±{stopping['target_ci']:.1%} "
                        f"after {stopping['max_duration_s']:g} s" if achieved is not None else
                        "CI target not reached: too few samples for an interval")
    parity = outcome.get("parity") or {}
    if parity.get("passed") is False:
        warnings.insert(0, f"parity FAILED vs {parity.get('reference', 'reference')}: {parity.get('reason')}")
    details = outcome.get("details") or {}
    if details.get("output_length_mismatches"):
        warnings.append(f"{details['output_length_mismatches']} replies were not the requested length "
                        "(counted, not hidden)")
    prompt = details.get("prompt_tokens") or {}
    if prompt.get("max_deviation") is not None and prompt["max_deviation"] > 0.01:
        low, high = prompt["server_counted"]
        warnings.append(f"prompt length: {prompt['requested']} tokens asked, the server counted {low}-{high} "
                        f"({prompt['max_deviation']:.1%} off, more than 1%)")
    share = prompt.get("prefix_cache_hit_share")
    reuse = (details.get("prompt") or {}).get("reuse") or ""
    if share is not None and share > 0.05 and reuse.startswith("none"):
        warnings.append(f"prefix cache: the server served {share:.0%} of prompt tokens from its cache although "
                        "every prompt was fresh; prefill was not measured in full")
    elif share is not None and share > 0 and not reuse.startswith("none"):
        warnings.append(f"prefix cache: {share:.0%} of prompt tokens served from the server's cache ({reuse})")
    if details.get("prompts_repeated"):
        warnings.append("prompts repeated: more requests than distinct prompts, so a prefix cache may have "
                        "served some prompt tokens")
    if details.get("request_failures"):
        causes = ", ".join(f"{k}: {v}" for k, v in sorted(details["request_failures"].items()))
        warnings.append(f"{details['requests_failed']} of {details['requests_total']} requests failed ({causes}); "
                        "failed requests are not timed")
    scenario = outcome.get("scenario") or {}
    if scenario and not scenario.get("valid"):
        warnings.append(f"invalid {scenario['name']} result: {scenario['validity_reason']}")
    warnings.extend(scenario.get("warnings") or [])
    interference = interference_warning(outcome.get("interference"))
    if interference:
        warnings.append(interference)
    return warnings


def derive(run_id: str, key: str, spec: Mapping[str, Any], outcome: Mapping[str, Any]) -> Record:
    """The record of one benchmark: its identity (``spec``, ``key``), the raw outcome the
    worker reported (``Outcome.to_dict()``) and every figure and warning derived from them.

    * ``stats`` summarise the raw latencies. The throughput is the scenario's own (offline:
      total work over busy time; server: achieved QPS; concurrent: completed work over the
      window), or work per step over the median step latency for one that declares none.
    * ``tokens``: TTFT, TPOT, ITL and E2E from per-token timestamps; decode bytes/s where
      the model says how many bytes one decode step streams (the weights and KV cache).
    * ``precision`` names a dtype the device does not run natively, and ``plausibility``
      marks a rate or memory figure the device cannot physically produce: both are notes a
      reader needs before trusting a number, and an implausible record is never ranked.
    """
    data: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "kind": RECORD_KIND, "run_id": run_id, "key": key,
                            "spec": dict(spec), **outcome, "stats": None, "tokens": None, "warnings": []}
    measurement = outcome.get("measurement") or {}
    latencies = measurement.get("latencies_ns") or []
    if outcome.get("status") == OK and latencies:
        data["stats"] = latency_stats(latencies)
        # Server latencies include queueing by design, so their spread is not instability.
        queueing = (outcome.get("scenario") or {}).get("name") == "server"
        stability = [] if queueing else stability_warnings(summarize(latencies), measurement.get("timer_resolution_ns"))
        data["warnings"] = _warnings(outcome, stability)
        # Each scenario owns its throughput basis; one that declares none (single-stream, a
        # plugin's) is rated by work per step over the median step latency.
        data["throughput"] = outcome.get("throughput") or median_rate(latencies, outcome.get("work_per_step"),
                                                                      outcome.get("unit"))
        offsets = measurement.get("token_offsets_ns")
        if offsets:
            batch = spec["batch_size"]
            data["tokens"] = token_metrics([list(marks) for marks in offsets], batch,
                                           measurement.get("token_counts"), measurement.get("elapsed_ns"),
                                           measurement.get("answer_marks"))
            mix = ((outcome.get("details") or {}).get("prompt") or {}).get("mix")
            counted = data["tokens"].get("output_tokens_per_s")
            if mix and mix != "fixed lengths" and counted:
                # Under a request mix each request has its own length: work per step (the workload's
                # mean) would price a run by the lengths it happened to draw. Count the tokens served.
                data["throughput"] = {**counted, "basis": f"{counted['basis']}; a request mix ({mix})"}
            model = (outcome.get("details") or {}).get("model") or {}
            decode = data["tokens"].get("decode_tokens_per_s")
            if decode and model.get("bytes_per_decode_step"):
                # Decode streams the weights and the KV cache once per step.
                data["tokens"]["decode_bytes_per_s"] = decode["value"] / batch * model["bytes_per_decode_step"]
    data["precision"] = precision_of(data.get("device_info"), spec["dtype"])
    note = precision_warning(data["precision"])
    if note and data.get("status") == OK:
        data["warnings"].append(note)
    data["plausibility"] = assess_record(data)
    if (data["plausibility"] or {}).get("verdict") == "implausible":
        data["warnings"].insert(0, f"implausible: {data['plausibility']['reason']}")
    return Record.from_json(data, f"record {key}")
