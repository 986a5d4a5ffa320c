"""Rich tables for the CLI: backends, workloads and benchmark summaries.

Every timing is shown with its 95% confidence interval and every number with
its unit; failed and unsupported benchmarks show their reason instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from harness.contract.options import backend_label
from harness.contract.units import format_bytes, format_interval, format_rate, format_seconds, si_scale, sig3
from harness.results.record import OK, Record, as_record, load_label

if TYPE_CHECKING:  # a listing row, as the plugin registry reports it
    from harness.engine.plugins import BackendStatus

_STATUS_STYLE = {"ok": "green", "invalid": "yellow", "parity-fail": "bold red", "failed": "bold red",
                 "unsupported": "yellow",
                 "unavailable": "dim"}


def backends_table(rows: Iterable[BackendStatus], catalog_ids: Mapping[int, str | None] | None = None) -> Table:
    """Backends and devices; ``catalog_ids`` maps ``id(row)`` to its catalog match."""
    catalog_ids = catalog_ids or {}
    table = Table(title="Backends", title_justify="left")
    for column in ("backend", "device", "available", "version / reason", "device model", "memory", "catalog"):
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
            catalog_ids.get(id(row)) or ("unmatched" if info and info.model else "-"),
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


def scenarios_table(scenarios: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(title="Scenarios", title_justify="left")
    for column in ("scenario", "settings (default)", "description"):
        table.add_column(column)
    for s in scenarios:
        if "error" in s:
            table.add_row(s["name"], "-", Text(f"unavailable: {s['error']}", "red"))
            continue
        settings = ", ".join(f"{o['key']}={o['default']}" for o in s["settings"])
        if s["uses_server_settings"]:
            settings = ", ".join(filter(None, [settings, "the server settings (--qps, --concurrency, SLO)"]))
        table.add_row(s["name"], settings or "-", s["description"])
    return table


def _params_text(params: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(params.items()))


def record_cells(record: Record | Mapping[str, Any]) -> dict[str, Any]:
    """The summary-table cells of one record, as plain strings."""
    record = as_record(record)
    spec, stats, throughput = record.spec, record.stats, record.throughput
    cells = {
        "backend": backend_label(spec),
        "device": spec["device"],
        "workload": spec["workload"],
        "params": _params_text(spec.get("params") or {}),
        "dtype": spec["dtype"],
        "batch": str(spec["batch_size"]),
        # With its load point, so the points of a sweep are told apart: ``concurrent concurrency=4``.
        "scenario": " ".join(part for part in (spec.get("scenario", "single-stream"), load_label(record)) if part),
        "status": record.status,
        "metric": "-",
        "median": "-",
        "p99": "-",
        "throughput": "-",
        "notes": "",
    }
    if record.status == OK and stats is not None:
        median = stats.median_s
        scale, _ = _time_scale(median)
        interval = format_interval(stats.median_ci_low_s, stats.median_ci_high_s, scale)
        cells["median"] = f"{format_seconds(median)} {interval}".strip()
        cells["p99"] = format_seconds(stats.p99_s)
        if throughput is not None and throughput.value is not None:
            tscale, _ = si_scale(throughput.value)
            interval = format_interval(throughput.ci_low, throughput.ci_high, tscale)
            cells["throughput"] = f"{format_rate(throughput.value, throughput.unit)} {interval}".strip()
        cells["notes"] = "; ".join(filter(None, [token_summary(record), *record.warnings]))
        scenario = record.scenario
        if scenario is not None:
            cells["metric"] = format_metric(scenario.metric or {})
            if not scenario.valid:
                cells["status"] = "invalid"
        if record.parity is not None and record.parity.passed is False:
            cells["status"] = "parity-fail"
        if record.plausibility is not None and record.plausibility.verdict == "implausible":
            cells["status"] = "implausible"
    else:
        cells["notes"] = record.reason or ""
    return cells


def token_summary(record: Record | Mapping[str, Any]) -> str:
    """``TTFT 136 ms [133, 148], TPOT 80 ms [78, 83], decode 12.5 token/s [12.1, 12.8]`` for LLM records."""
    tokens = as_record(record).tokens
    if tokens is None:
        return ""
    parts = []
    for name in ("ttft", "tpot"):
        stats = getattr(tokens, name)
        if stats:
            scale, _ = _time_scale(stats["median_s"])
            interval = format_interval(stats.get("median_ci_low_s"), stats.get("median_ci_high_s"), scale)
            parts.append(f"{name.upper()} {format_seconds(stats['median_s'])} {interval}".strip())
    decode = tokens.decode_tokens_per_s
    if decode is not None and decode.value is not None:
        scale, _ = si_scale(decode.value)
        interval = format_interval(decode.ci_low, decode.ci_high, scale)
        parts.append(f"decode {format_rate(decode.value, 'token/s')} {interval}".strip())
    return ", ".join(parts)


def format_metric(metric: Mapping[str, Any]) -> str:
    """A scenario's headline metric with its unit: ``p90 1.2 ms``, ``812 QPS``, ``7.5 ksample/s``."""
    value, unit, name = metric.get("value"), metric.get("unit"), metric.get("name", "")
    if value is None:
        return "-"
    if unit == "s":
        return f"{name.split('_')[0]} {format_seconds(value)}"
    if unit == "queries/s":
        return f"{sig3(value)} QPS" + (" max" if name.startswith("max") else "")
    return format_rate(value, unit)


def _time_scale(seconds: float) -> tuple[float, str]:
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if seconds >= scale:
            return scale, unit
    return 1e-9, "ns"


RESULT_COLUMNS = ("backend", "device", "workload", "params", "dtype", "batch", "scenario", "status",
                  "median [95% CI]", "p99", "throughput [95% CI]", "metric", "notes")
_CELL_FOR_COLUMN = {"median [95% CI]": "median", "throughput [95% CI]": "throughput"}


def results_table(records: Iterable[Record | Mapping[str, Any]], title: str = "Results",
                  costs: Mapping[tuple[Any, Any], str] | None = None) -> RenderableType:
    """The summary table, with notes (warnings, failure reasons) as numbered footnotes below it.

    ``status`` is ``invalid`` for a measured result that fails its scenario's
    validity rule. The scenario and metric columns appear only when some
    record is not single-stream (whose metric, p90, is already shown). ``costs``
    (``(run_id, key)``: ``$0.02 per 1M tokens``, from a ranking) adds a cost column.
    """
    from harness.results.roofline import read_ceilings, roofline_fraction

    records = [as_record(r) for r in records]
    ceilings = read_ceilings(records)
    table = Table(title=title, title_justify="left")
    only_single_stream = all(r.spec.get("scenario", "single-stream") == "single-stream" for r in records)
    columns = [c for c in RESULT_COLUMNS if not (only_single_stream and c in ("scenario", "metric"))]
    if costs:
        columns.insert(columns.index("throughput [95% CI]") + 1, "cost")
    for column in columns:
        numeric = column in ("batch", "median [95% CI]", "p99", "throughput [95% CI]", "metric", "cost")
        table.add_column(column, justify="right" if numeric else "left",
                         no_wrap=column != "notes", overflow="fold")
    footnotes: list[Text] = []
    for record in records:
        cells = record_cells(record)
        cells["cost"] = (costs or {}).get((record.run_id, record.key), "-")
        note = cells.pop("notes")
        roofline = roofline_fraction(record, ceilings)
        if roofline:
            share = f"decode at {roofline[0]:.0%} of the membw read roofline ({format_rate(roofline[1], 'B/s')})"
            note = f"{note}; {share}" if note else share
        if note:
            where = f"{cells['backend']}/{cells['device']} {cells['workload']} {cells['dtype']} b{cells['batch']}"
            if not only_single_stream:
                where += f" {cells['scenario']}"
            footnotes.append(Text(f"[{len(footnotes) + 1}] {where}: {note}"))
            cells["notes"] = f"[{len(footnotes)}]"
        else:
            cells["notes"] = ""
        cells["status"] = Text(cells["status"], _STATUS_STYLE.get(cells["status"], ""))
        # Text, not markup: "torch[graph=compile]" would otherwise read as a style tag.
        table.add_row(*(Text(value) if isinstance(value, str) else value
                        for value in (cells[_CELL_FOR_COLUMN.get(c, c)] for c in columns)))
    return Group(table, *footnotes)
