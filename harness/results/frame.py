"""The flat results table: one pandas row per record, and its export formats.

``harness.results.load(*paths)`` (re-exported by the harness.results package) flattens records from any
mix of record files, run folders and results roots; units are in column names
(``median_s``) or a sibling column (``throughput_unit``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from harness.contract.options import flatten as flatten_options, options_text
from harness.results.record import RECORD_KIND, rankable
from harness.results.store import DEFAULT_RESULTS_DIR, _expand, _read_json

if TYPE_CHECKING:  # pragma: no cover
    import pandas

#: List-valued columns, stored as JSON text in formats without lists (CSV, markdown).
LIST_COLUMNS = ("latencies_s",)

def record_to_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """Flatten one record into a DataFrame row; units are in the column names."""
    spec = record["spec"]
    stats = record.get("stats") or {}
    throughput = record.get("throughput") or {}
    failure = record.get("failure") or {}
    device_info = record.get("device_info") or {}
    measurement = record.get("measurement") or {}
    row: dict[str, Any] = {
        "run_id": record.get("run_id"),
        "host": record.get("host"),
        "node_id": (record.get("node") or {}).get("ray_node_id"),
        "key": record.get("key"),
        "backend": spec.get("backend"),
        "options": options_text(spec.get("options")) or None,
        "device": spec.get("device"),
        "workload": spec.get("workload"),
        "dtype": spec.get("dtype"),
        "batch_size": spec.get("batch_size"),
        "status": record.get("status"),
        "rankable": rankable(record),
        "reason": record.get("reason"),
        "unit": record.get("unit"),
        "work_per_step": record.get("work_per_step"),
        "count": stats.get("count"),
    }
    for name in ("median", "mean", "stdev", "min", "max", "p50", "p90", "p95", "p99",
                 "median_ci_low", "median_ci_high"):
        row[f"{name}_s"] = stats.get(f"{name}_s")
    row.update(
        cv=stats.get("cv"),
        outliers=stats.get("outliers"),
        throughput=throughput.get("value"),
        throughput_unit=throughput.get("unit"),
        throughput_ci_low=throughput.get("ci_low"),
        throughput_ci_high=throughput.get("ci_high"),
        warnings="; ".join(record.get("warnings") or []) or None,
        failure_cause=failure.get("cause"),
        failure_message=failure.get("message"),
        device_vendor=device_info.get("vendor"),
        device_model=device_info.get("model"),
        scenario=spec.get("scenario"),
        valid=(record.get("scenario") or {}).get("valid"),
        validity_reason=(record.get("scenario") or {}).get("validity_reason"),
        metric=((record.get("scenario") or {}).get("metric") or {}).get("name"),
        metric_value=((record.get("scenario") or {}).get("metric") or {}).get("value"),
        metric_unit=((record.get("scenario") or {}).get("metric") or {}).get("unit"),
        ci_target_reached=(record.get("stopping") or {}).get("target_reached"),
        ttft_s=((record.get("tokens") or {}).get("ttft") or {}).get("median_s"),
        tpot_s=((record.get("tokens") or {}).get("tpot") or {}).get("median_s"),
        itl_p99_s=((record.get("tokens") or {}).get("itl") or {}).get("p99_s"),
        e2e_s=((record.get("tokens") or {}).get("e2e") or {}).get("median_s"),
        output_tokens_per_s=((record.get("tokens") or {}).get("output_tokens_per_s") or {}).get("value"),
        decode_tokens_per_s=((record.get("tokens") or {}).get("decode_tokens_per_s") or {}).get("value"),
        decode_bytes_per_s=(record.get("tokens") or {}).get("decode_bytes_per_s"),
        energy_joules=(record.get("energy") or {}).get("joules"),
        energy_reason=(record.get("energy") or {}).get("reason"),
        average_watts=(record.get("energy") or {}).get("average_watts"),
        joules_per_unit=(record.get("energy") or {}).get(f"joules_per_{record.get('unit')}"),
        host_peak_rss_bytes=(record.get("memory") or {}).get("host_peak_rss_bytes"),
        device_peak_bytes=(record.get("memory") or {}).get("device_peak_bytes"),
        weight_bytes=(record.get("memory") or {}).get("weight_bytes"),
        cpu_cores_busy=(record.get("utilisation") or {}).get("cpu_cores_busy"),
        noisy=(record.get("interference") or {}).get("noisy"),
        other_cpu_share=(record.get("interference") or {}).get("other_cpu_share"),
        steal_share=(record.get("interference") or {}).get("steal_share"),
        fingerprint=record.get("fingerprint"),
        parity_passed=(record.get("parity") or {}).get("passed"),
        parity_max_abs_error=(record.get("parity") or {}).get("max_abs_error"),
        parity_max_rel_error=(record.get("parity") or {}).get("max_rel_error"),
        parity_cosine=(record.get("parity") or {}).get("cosine"),
        ci_half_width=(record.get("stopping") or {}).get("achieved_ci"),
        harness_overhead_s=(measurement.get("harness_overhead_ns") or 0) / 1e9 or None,
        backend_version=record.get("backend_version"),
        peak_device_memory_bytes=record.get("peak_device_memory_bytes"),
        prepare_s=record.get("prepare_s"),
        warmup=(spec.get("stopping") or {}).get("warmup"),
        threads=spec.get("threads"),
        timer=measurement.get("timer"),
        started_at=record.get("started_at"),
        finished_at=record.get("finished_at"),
        latencies_s=[v / 1e9 for v in measurement.get("latencies_ns", [])] or None,
    )
    row["precision_native"] = (record.get("precision") or {}).get("native")
    row["plausibility"] = (record.get("plausibility") or {}).get("verdict")
    for name, value in sorted((spec.get("params") or {}).items()):
        row[f"param.{name}"] = value
    for name, value in flatten_options(spec.get("options") or {}).items():
        row[f"option.{name}"] = value
    return row


def load_records(*paths: Path | str) -> list[dict[str, Any]]:
    """Validated records from record files, run folders or results roots."""
    if not paths:
        paths = (DEFAULT_RESULTS_DIR,)
    records: list[dict[str, Any]] = []
    for raw in paths:
        for record_path, _run_dir in _expand(Path(raw)):
            records.append(_read_json(record_path, RECORD_KIND))
    return records


def load(*paths: Path | str) -> "pandas.DataFrame":
    """One row per benchmark from any mix of record files, run folders and results roots.

    >>> df = load("results/20261130-120000-ab12")          # doctest: +SKIP
    >>> df.groupby("backend")["throughput"].max()           # doctest: +SKIP

    A corrupt, foreign or too-new file raises :class:`harness.contract.errors.ResultsError`
    naming the file.
    """
    import pandas as pd

    from harness.results.roofline import read_ceilings, roofline_fraction

    records = load_records(*paths)
    ceilings = read_ceilings(records)
    rows = []
    for record in records:
        row = record_to_row(record)
        roofline = roofline_fraction(record, ceilings)
        row["roofline_bandwidth_Bps"] = roofline[1] if roofline else None
        row["roofline_fraction"] = roofline[0] if roofline else None
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=list(record_to_row({"spec": {}}).keys()))
    return frame


def export_frame(frame: "pandas.DataFrame", fmt: str, output: Path | None) -> str | None:
    """Write ``frame`` as csv, parquet, json or markdown; returns text when ``output`` is None."""
    flat = frame.copy()
    if fmt in ("csv", "markdown"):
        for column in LIST_COLUMNS:
            if column in flat:
                flat[column] = flat[column].map(lambda v: json.dumps(list(v)) if v is not None else None)
    if fmt == "parquet":
        flat.to_parquet(output, index=False)
        return None
    if fmt == "csv":
        text = flat.to_csv(index=False)
    elif fmt == "json":
        text = flat.to_json(orient="records", indent=1)
    else:
        text = flat.drop(columns=[c for c in LIST_COLUMNS if c in flat]).to_markdown(index=False)
    if output is None:
        return text
    Path(output).write_text(text, encoding="utf-8")
    return None


def read_export(path: Path | str) -> "pandas.DataFrame":
    """Read a CSV or Parquet export back, restoring list columns."""
    import pandas as pd

    path = Path(path)
    # Only empty CSV fields are missing: a backend may well be called "null" or "NA".
    frame = (pd.read_parquet(path) if path.suffix == ".parquet"
             else pd.read_csv(path, keep_default_na=False, na_values=[""]))
    for column in LIST_COLUMNS:
        if column in frame:
            frame[column] = frame[column].map(lambda v: json.loads(v) if isinstance(v, str) else
                                              (list(v) if v is not None and not isinstance(v, float) else None))
    return frame
