"""membw probes and the LLM memory-bandwidth roofline."""

from __future__ import annotations

import pytest

from harness.engine.plugins import Registry
from harness.engine.runner import Measurement, Outcome, execute
from harness.engine.spec import BenchmarkSpec
from harness.engine.timing import Stopping
from harness.results.frame import load
from harness.results.roofline import read_ceilings, roofline_fraction
from harness.results.store import RunStore, build_record

CPU_TARGETS = [("torch", "cpu"), ("onnxruntime", "CPUExecutionProvider"), ("openvino", "CPU")]


@pytest.mark.parametrize("backend, device", CPU_TARGETS)
@pytest.mark.parametrize("mode", ["read", "copy"])
def test_membw_runs_with_parity_and_counts_bytes(backend, device, mode):
    spec = BenchmarkSpec.create(backend=backend, device=device, workload="membw",
                                params={"size_mib": 8, "mode": mode}, iterations=5)
    record = build_record("r", spec, execute(spec, Registry()))
    assert record["status"] == "ok", record["reason"]
    assert record["parity"]["passed"] is True, record["parity"]
    assert record["work_per_step"] == (1 if mode == "read" else 2) * 8 * (1 << 20)
    assert record["throughput"]["unit"] == "B/s" and record["throughput"]["value"] > 0


def _record(workload, params, *, host="box", model="CPU X", throughput=None, tokens=None, parity=True):
    spec = BenchmarkSpec.create(backend="torch", device="cpu", workload=workload, params=params)
    outcome = Outcome(status="ok", unit="B", work_per_step=1.0,
                      measurement=Measurement((1_000_000,) * 10, 0, "fake", 1.0),
                      device_info={"model": model}, parity={"passed": parity})
    record = build_record("r", spec, outcome)
    record["host"] = host
    if throughput is not None:
        record["throughput"] = {"value": throughput, "unit": "B/s"}
    record["tokens"] = tokens
    return record


def test_roofline_fraction_uses_the_best_valid_read_ceiling_of_the_same_device():
    records = [
        _record("membw", {"mode": "read"}, throughput=40e9),
        _record("membw", {"mode": "read"}, throughput=50e9),
        _record("membw", {"mode": "read"}, throughput=90e9, parity=False),  # wrong answers never set ceilings
        _record("membw", {"mode": "copy"}, throughput=70e9),                # copy is not the decode roofline
        _record("membw", {"mode": "read"}, throughput=99e9, host="other"),
    ]
    ceilings = read_ceilings(records)
    assert ceilings[("box", "CPU X")] == 50e9 and ceilings[("other", "CPU X")] == 99e9
    llm = _record("llm", {"preset": "tiny"}, tokens={"decode_bytes_per_s": 30e9})
    assert roofline_fraction(llm, ceilings) == (pytest.approx(0.6), 50e9)
    elsewhere = _record("llm", {"preset": "tiny"}, model="GPU Y", tokens={"decode_bytes_per_s": 30e9})
    assert roofline_fraction(elsewhere, ceilings) is None


def test_load_adds_roofline_columns(tmp_path, test_plugins):
    registry = Registry()
    store = RunStore.create(tmp_path)
    for workload, params in (("membw", {"size_mib": 8, "mode": "read"}), ("llm", {"preset": "tiny"})):
        spec = BenchmarkSpec.create(backend="torch", device="cpu", workload=workload, params=params,
                                    stopping=Stopping(warmup=1).with_fixed_iterations(5))
        store.write(spec, execute(spec, registry))
    frame = load(store.path).set_index("workload")
    assert frame.loc["llm", "roofline_bandwidth_Bps"] == pytest.approx(frame.loc["membw", "throughput"])
    expected = frame.loc["llm", "decode_bytes_per_s"] / frame.loc["membw", "throughput"]
    assert frame.loc["llm", "roofline_fraction"] == pytest.approx(expected)
