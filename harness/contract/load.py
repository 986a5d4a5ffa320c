"""Load-default profiles a backend may declare (capability ``LoadDefaults``), and applying them.

The general defaults of the scenarios (a 100 ms p99 SLO, 1,000 queries, 10 s at most) fit
kernels and in-process models whose steps take micro- to milliseconds. An LLM request to a
serving engine takes seconds: under those defaults the server scenario stopped after 11
requests, the concurrent one ran out of time at 48 of 1,000 queries, and single-stream
missed its confidence target at 23 requests (issue 18). A backend whose steps are serving
requests declares :data:`SERVING_LOAD_DEFAULTS`, and the planner uses them for every field
the user did not set. This module imports nothing.
"""

from __future__ import annotations

from typing import Any, Mapping

#: The profile for LLM serving endpoints. Every figure is a default the user can override.
SERVING_LOAD_DEFAULTS: Mapping[str, Any] = {
    # MLPerf Inference's Server constraints for llama3.1-8b: p99 TTFT 2 s and p99 TPOT 100 ms
    # (its "Interactive" category tightens them to 500/30 ms).
    "server.ttft_bound_s": 2.0,
    "server.tpot_bound_s": 0.1,
    # MLPerf gates the LLM server on TTFT and TPOT, not on the whole request; a p99 request
    # over a minute is a hang, not a latency.
    "server.latency_slo_s": 60.0,
    # Tens of requests, not LoadGen's hundreds of thousands: enough for a p99 over 50, at
    # a rate an engine on a small machine serves in tens of seconds.
    "server.min_queries": 50,
    "server.min_duration_s": 10.0,
    # Long enough for 50 closed-loop requests of a few hundred ms each, and for single-stream
    # to reach its confidence target; short enough that a sweep of points finishes.
    "stopping.max_duration_s": 60.0,
}


def load_default_problem(defaults: Mapping[str, Any], fields: Mapping[str, set[str]]) -> str | None:
    """Why ``defaults`` cannot be applied (an unknown section or field, a non-number), else None.

    ``fields`` maps each section (``stopping``, ``server``) to its field names.
    """
    for key, value in defaults.items():
        section, _, name = str(key).partition(".")
        if section not in fields or name not in fields[section]:
            known = ", ".join(f"{s}.{n}" for s in sorted(fields) for n in sorted(fields[s]))
            return f"unknown load default {key!r} (known: {known})"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            return f"load default {key} = {value!r} must be a number > 0"
    return None


def describe(defaults: Mapping[str, Any]) -> str:
    """``p99 TTFT 2 s, p99 TPOT 100 ms, ...``: a profile in words, for help texts."""
    words = {"server.ttft_bound_s": ("p99 TTFT", "s"), "server.tpot_bound_s": ("p99 TPOT", "s"),
             "server.latency_slo_s": ("p99 latency SLO", "s"), "server.min_queries": ("at least", " queries"),
             "server.min_duration_s": ("load runs at least", "s"),
             "stopping.max_duration_s": ("every run ends by", "s")}
    parts = []
    for key, value in defaults.items():
        label, unit = words.get(key, (key, ""))
        if unit == "s":
            text = f"{value * 1e3:g} ms" if value < 1 else f"{value:g} s"
        else:
            text = f"{value:g}{unit}"
        parts.append(f"{label} {text}")
    return ", ".join(parts)
