"""The flat results table: one pandas row per record, and its export formats.

``harness.results.load(*paths)`` flattens records from any mix of record files, run
folders and results roots into one typed-record row each; units are in column names
(``median_s``) or a sibling column (``throughput_unit``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from harness.contract.options import flatten as flatten_options, options_text
from harness.results.record import RECORD_KIND, Record, as_record, rankable
from harness.results.store import DEFAULT_RESULTS_DIR, _expand, _read_json

if TYPE_CHECKING:  # pragma: no cover
    import pandas

#: List-valued columns, stored as JSON text in formats without lists (CSV, markdown).
LIST_COLUMNS = ("latencies_s",)

def _of(part: Any, name: str) -> Any:
    """A typed part's field, ``None`` where the record has no such part."""
    return None if part is None else getattr(part, name)


def record_to_row(record: Record | Mapping[str, Any]) -> dict[str, Any]:
    """Flatten one record into a DataFrame row; units are in the column names."""
    typed = as_record(record)
    spec, stats, throughput, tokens = typed.spec, typed.stats, typed.throughput, typed.tokens
    energy, memory, scenario, parity = typed.energy, typed.memory, typed.scenario, typed.parity
    failure = typed.failure or {}
    device_info = typed.device_info or {}
    measurement = typed.measurement or {}
    metric = _of(scenario, "metric") or {}
    row: dict[str, Any] = {
        "run_id": typed.run_id,
        "host": typed.host,
        "node_id": (typed.node or {}).get("ray_node_id"),
        "key": typed.key,
        "backend": spec.get("backend"),
        "options": options_text(spec.get("options")) or None,
        "device": spec.get("device"),
        "workload": spec.get("workload"),
        "dtype": spec.get("dtype"),
        "batch_size": spec.get("batch_size"),
        "status": typed.status,
        "rankable": rankable(record),
        "reason": typed.reason,
        "unit": typed.unit,
        "work_per_step": typed.work_per_step,
        "count": _of(stats, "count"),
    }
    for name in ("median", "mean", "stdev", "min", "max", "p50", "p90", "p95", "p99",
                 "median_ci_low", "median_ci_high"):
        row[f"{name}_s"] = _of(stats, f"{name}_s")
    row.update(
        cv=_of(stats, "cv"),
        outliers=_of(stats, "outliers"),
        throughput=_of(throughput, "value"),
        throughput_unit=_of(throughput, "unit"),
        throughput_ci_low=_of(throughput, "ci_low"),
        throughput_ci_high=_of(throughput, "ci_high"),
        warnings="; ".join(typed.warnings) or None,
        failure_cause=failure.get("cause"),
        failure_message=failure.get("message"),
        device_vendor=device_info.get("vendor"),
        device_model=device_info.get("model"),
        scenario=spec.get("scenario"),
        valid=_of(scenario, "valid"),
        validity_reason=_of(scenario, "validity_reason"),
        metric=metric.get("name"),
        metric_value=metric.get("value"),
        metric_unit=metric.get("unit"),
        ci_target_reached=(typed.stopping or {}).get("target_reached"),
        ttft_s=(_of(tokens, "ttft") or {}).get("median_s"),
        ttft_p99_s=(_of(tokens, "ttft") or {}).get("p99_s"),
        ttfa_s=(_of(tokens, "ttfa") or {}).get("median_s"),
        tpot_s=(_of(tokens, "tpot") or {}).get("median_s"),
        tpot_p99_s=(_of(tokens, "tpot") or {}).get("p99_s"),
        requests_per_s=typed.requests_per_s,
        itl_p99_s=(_of(tokens, "itl") or {}).get("p99_s"),
        e2e_s=(_of(tokens, "e2e") or {}).get("median_s"),
        output_tokens_per_s=_of(_of(tokens, "output_tokens_per_s"), "value"),
        decode_tokens_per_s=_of(_of(tokens, "decode_tokens_per_s"), "value"),
        decode_bytes_per_s=_of(tokens, "decode_bytes_per_s"),
        energy_joules=_of(energy, "joules"),
        energy_reason=_of(energy, "reason"),
        average_watts=_of(energy, "average_watts"),
        joules_per_unit=energy.joules_per(typed.unit) if energy is not None else None,
        host_peak_rss_bytes=_of(memory, "host_peak_rss_bytes"),
        device_peak_bytes=_of(memory, "device_peak_bytes"),
        weight_bytes=_of(memory, "weight_bytes"),
        cpu_cores_busy=(typed.utilisation or {}).get("cpu_cores_busy"),
        noisy=_of(typed.interference, "noisy"),
        other_cpu_share=_of(typed.interference, "other_cpu_share"),
        steal_share=_of(typed.interference, "steal_share"),
        fingerprint=typed.fingerprint,
        parity_passed=_of(parity, "passed"),
        parity_max_abs_error=_of(parity, "max_abs_error"),
        parity_max_rel_error=_of(parity, "max_rel_error"),
        parity_cosine=_of(parity, "cosine"),
        ci_half_width=(typed.stopping or {}).get("achieved_ci"),
        harness_overhead_s=(measurement.get("harness_overhead_ns") or 0) / 1e9 or None,
        backend_version=typed.backend_version,
        peak_device_memory_bytes=typed.peak_device_memory_bytes,
        prepare_s=typed.prepare_s,
        warmup=(spec.get("stopping") or {}).get("warmup"),
        threads=spec.get("threads"),
        timer=measurement.get("timer"),
        started_at=typed.started_at,
        finished_at=typed.finished_at,
        latencies_s=[v / 1e9 for v in measurement.get("latencies_ns", [])] or None,
    )
    row["precision_native"] = _of(typed.precision, "native")
    row["plausibility"] = _of(typed.plausibility, "verdict")
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

    records = [as_record(r) for r in load_records(*paths)]  # typed once, read by every figure
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
