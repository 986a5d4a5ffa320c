"""Rich tables for the CLI: backends, workloads and benchmark summaries.

Every timing is shown with its 95% confidence interval and every number with
its unit; failed and unsupported benchmarks show their reason instead.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from rich.table import Table
from rich.text import Text

from harness.plugins import BackendStatus
from harness.runner import OK
from harness.units import format_bytes, format_interval, format_rate, format_seconds, si_scale

_STATUS_STYLE = {"ok": "green", "failed": "bold red", "unsupported": "yellow", "unavailable": "dim"}


def backends_table(rows: Iterable[BackendStatus]) -> Table:
    table = Table(title="Backends", title_justify="left")
    for column in ("backend", "device", "available", "version / reason", "device model", "memory"):
        table.add_column(column, overflow="fold", no_wrap=column in ("backend", "device"))
    for row in rows:
        info = row.info
        detail = row.version if row.available else f"unavailable: {row.reason}"
        table.add_row(
            row.backend,
            row.device or "-",
            Text("yes", "green") if row.available else Text("no", "red"),
            detail or "-",
            (info.model if info else None) or "-",
            format_bytes(info.memory_bytes if info else None),
        )
    return table


def workloads_table(workloads: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(title="Workloads", title_justify="left")
    for column in ("workload", "unit", "parameters (default)", "description"):
        table.add_column(column)
    for w in workloads:
        if "error" in w:
            table.add_row(w["name"], "-", "-", Text(f"unavailable: {w['error']}", "red"))
            continue
        params = ", ".join(f"{p['name']}={p['default']}" for p in w["params"])
        table.add_row(w["name"], w["unit"], params or "-", w["description"])
    return table


def _params_text(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(params.items()))


def record_cells(record: Mapping[str, Any]) -> dict[str, Any]:
    """The summary-table cells of one record, as plain strings."""
    spec = record["spec"]
    stats = record.get("stats") or {}
    throughput = record.get("throughput") or {}
    cells = {
        "backend/device": f"{spec['backend']}/{spec['device']}",
        "workload": f"{spec['workload']} {_params_text(spec.get('params') or {})}".strip(),
        "dtype": spec["dtype"],
        "batch": str(spec["batch_size"]),
        "status": record["status"],
        "median": "-",
        "p99": "-",
        "throughput": "-",
        "notes": "",
    }
    if record["status"] == OK and stats:
        median = stats["median_s"]
        scale, _ = _time_scale(median)
        cells["median"] = f"{format_seconds(median)} {format_interval(stats['median_ci_low_s'], stats['median_ci_high_s'], scale)}".strip()
        cells["p99"] = format_seconds(stats["p99_s"])
        if throughput:
            tscale, _ = si_scale(throughput["value"])
            cells["throughput"] = (
                f"{format_rate(throughput['value'], throughput['unit'])} "
                f"{format_interval(throughput.get('ci_low'), throughput.get('ci_high'), tscale)}"
            ).strip()
        cells["notes"] = "; ".join(record.get("warnings") or [])
    else:
        cells["notes"] = record.get("reason") or ""
    return cells


def _time_scale(seconds: float) -> tuple[float, str]:
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if seconds >= scale:
            return scale, unit
    return 1e-9, "ns"


def results_table(records: Iterable[Mapping[str, Any]], title: str = "Results") -> Table:
    table = Table(title=title, title_justify="left", caption="median and throughput: value [95% CI of the median]",
                  caption_justify="left")
    columns = ("backend/device", "workload", "dtype", "batch", "status", "median", "p99", "throughput", "notes")
    for column in columns:
        numeric = column in ("batch", "median", "p99", "throughput")
        table.add_column(column, justify="right" if numeric else "left",
                         no_wrap=column != "notes", overflow="fold")
    for record in records:
        cells = record_cells(record)
        cells["status"] = Text(cells["status"], _STATUS_STYLE.get(cells["status"], ""))
        table.add_row(*(cells[c] for c in columns))
    return table
