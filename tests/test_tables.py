"""Table formatting: units on every number, intervals on every timing, reasons as footnotes."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from harness.contract.units import format_bytes, format_rate, format_seconds, sig3
from harness.engine.runner import Measurement, Outcome
from harness.engine.spec import BenchmarkSpec
from harness.presentation.tables import record_cells, results_table
from harness.results.store import build_record


@pytest.mark.parametrize("value, text", [
    (0, "0"), (0.004123, "0.00412"), (41.23, "41.2"), (999.7, "1000"), (1030, "1030"), (5.0, "5"),
])
def test_sig3(value, text):
    assert sig3(value) == text


def test_unit_formatting():
    assert format_seconds(0.000412) == "412 µs"
    assert format_seconds(1.5) == "1.5 s"
    assert format_seconds(3e-8) == "30 ns"
    assert format_rate(8.34e10, "FLOP/s") == "83.4 GFLOP/s"
    assert format_rate(966, "sample/s") == "966 sample/s"
    assert format_bytes(25 * (1 << 30)) == "25 GiB"
    assert format_seconds(None) == "-"


def render(records) -> str:
    console = Console(file=io.StringIO(), width=250)
    console.print(results_table(records))
    return console.file.getvalue()


def test_results_table_shows_intervals_and_footnotes():
    spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm", params={"size": 8})
    ok = build_record("r", spec, Outcome(
        status="ok", unit="FLOP", work_per_step=1e6,
        measurement=Measurement((2_000_000,) * 10 + (3_000_000,) * 9, 0, "fake", 1.0)))
    failed_spec = BenchmarkSpec.create(backend="openvino", device="CPU", workload="gemm")
    failed = build_record("r", failed_spec, Outcome.failed("signal", "worker killed by SIGSEGV"))
    cells = record_cells(ok)
    # 19 samples: median 2 ms; order-statistic CI ranks (4, 14) -> [2 ms, 3 ms]
    assert cells["median"] == "2 ms [2, 3]"
    assert cells["p99"] == "3 ms"
    assert cells["throughput"] == "500 MFLOP/s [333, 500]"
    text = render([ok, failed])
    # quartiles 2 ms and 3 ms: IQR is 50% of the 2 ms median
    assert "[1] torch/cpu gemm float32 b1: high spread: IQR 50.0% of median > 10%" in text
    assert "[2] openvino/CPU gemm float32 b1: signal: worker killed by SIGSEGV" in text
    assert "size=8" in text


@pytest.mark.parametrize("metric, text", [
    ({"name": "p90_latency", "value": 0.0012, "unit": "s"}, "p90 1.2 ms"),
    ({"name": "qps", "value": 250.0, "unit": "queries/s"}, "250 QPS"),
    ({"name": "max_valid_qps", "value": 812.4, "unit": "queries/s"}, "812 QPS max"),
    ({"name": "throughput", "value": 7500.0, "unit": "sample/s"}, "7.5 ksample/s"),
    ({"name": "max_valid_qps", "value": None, "unit": "queries/s"}, "-"),
])
def test_format_metric(metric, text):
    from harness.presentation.tables import format_metric

    assert format_metric(metric) == text


def test_invalid_results_are_marked_and_scenario_columns_appear_when_needed():
    spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm", scenario="server")
    outcome = Outcome(status="ok", unit="FLOP", work_per_step=1e6,
                      measurement=Measurement((2_000_000,) * 20, 0, "fake", 1.0),
                      scenario={"name": "server", "metric": {"name": "qps", "value": 40.0, "unit": "queries/s"},
                                "valid": False, "validity_reason": "p99 latency 9 ms > SLO 5 ms"})
    record = build_record("r", spec, outcome)
    assert record_cells(record)["status"] == "invalid"
    text = render([record])
    assert "server" in text and "40 QPS" in text
    assert "invalid server result: p99 latency 9 ms > SLO 5 ms" in text


def test_llm_records_show_ttft_tpot_and_decode_rate_with_intervals():
    from harness.presentation.tables import token_summary

    ms = 1_000_000
    spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="llm")
    offsets = tuple((100 * ms + i * ms, 110 * ms + i * ms, 120 * ms + i * ms) for i in range(10))
    outcome = Outcome(status="ok", unit="token", work_per_step=3.0,
                      measurement=Measurement(tuple(o[-1] for o in offsets), 0, "fake", 1.0, token_offsets_ns=offsets))
    summary = token_summary(build_record("r", spec, outcome))
    # TTFT medians 104.5 ms; TPOT is exactly 10 ms; decode = 1 / 10 ms = 100 token/s
    assert summary.startswith("TTFT 104 ms [")
    assert "TPOT 10 ms [10, 10]" in summary and "decode 100 token/s [100, 100]" in summary
