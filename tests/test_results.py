"""The results store: round trip, atomic writes, and clear errors for bad files."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from harness.contract.errors import ResultsError
from harness.engine.runner import Measurement, Outcome
from harness.engine.spec import BenchmarkSpec
from harness.files.atomic import atomic_write_json
from harness.results.frame import load, record_to_row
from harness.results.store import SCHEMA_VERSION, RunStore, build_record, read_manifest, read_records, resolve_run

REQUIRED_COLUMNS = {"run_id", "backend", "device", "workload", "dtype", "batch_size", "unit",
                    "median_s", "p99_s", "throughput"}


def ok_outcome(latencies_ns, work=1e9, unit="FLOP"):
    return Outcome(
        status="ok",
        measurement=Measurement(tuple(latencies_ns), warmup=2, timer="fake", timer_resolution_ns=1.0),
        unit=unit,
        work_per_step=work,
        backend_version="1.0",
        device_info={"backend": "torch", "device": "cpu", "model": "Test CPU"},
    )


def make_run(root, specs_and_outcomes):
    store = RunStore.create(root, settings={"iterations": 10}, command=["bakeoff", "run"])
    for spec, outcome in specs_and_outcomes:
        store.write(spec, outcome)
    store.finish()
    return store


@pytest.fixture
def sample_run(results_dir):
    gemm = BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm", params={"size": 64})
    mlp = BenchmarkSpec.create(backend="torch", device="cpu", workload="mlp", batch_size=8)
    failed = BenchmarkSpec.create(backend="onnxruntime", device="CPUExecutionProvider", workload="gemm")
    latencies = [1_000_000 + 1000 * i for i in range(20)]  # 1.000 .. 1.019 ms
    return make_run(results_dir, [
        (gemm, ok_outcome(latencies)),
        (mlp, ok_outcome([2_000_000] * 10, work=8, unit="sample")),
        (failed, Outcome.failed("signal", "worker killed by SIGSEGV", signal="SIGSEGV", stderr_tail="boom")),
    ])


def test_round_trip_gives_one_row_per_benchmark(sample_run):
    frame = load(sample_run.path)
    assert len(frame) == 3
    assert REQUIRED_COLUMNS <= set(frame.columns)
    gemm = frame[(frame.workload == "gemm") & (frame.backend == "torch")].iloc[0]
    assert gemm.run_id == sample_run.run_id
    assert gemm.median_s == pytest.approx(0.0010095)
    assert gemm.p99_s == pytest.approx((1_000_000 + 1000 * 18.81) / 1e9)
    assert gemm.throughput == pytest.approx(1e9 / 0.0010095)
    assert gemm.throughput_unit == "FLOP/s"
    assert gemm["param.size"] == 64
    assert gemm.latencies_s[0] == pytest.approx(0.001)
    assert gemm.median_ci_low_s <= gemm.median_s <= gemm.median_ci_high_s
    mlp = frame[frame.workload == "mlp"].iloc[0]
    assert mlp.throughput == pytest.approx(4000) and mlp.unit == "sample"
    failed = frame[frame.status == "failed"].iloc[0]
    assert failed.failure_cause == "signal"
    assert pd.isna(failed.median_s) and pd.isna(failed.throughput)


def test_records_keep_raw_samples_and_schema_version(sample_run):
    records = read_records(sample_run.path)
    assert all(r["schema_version"] == SCHEMA_VERSION for r in records)
    gemm = next(r for r in records if r["spec"]["workload"] == "gemm" and r["status"] == "ok")
    assert gemm["measurement"]["latencies_ns"] == [1_000_000 + 1000 * i for i in range(20)]
    manifest = read_manifest(sample_run.path)
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["status"] == "complete" and manifest["finished_at"]
    assert manifest["command"] == ["bakeoff", "run"]
    for key in ("cpu", "memory_bytes", "os", "python", "packages"):
        assert key in manifest["host"]
    assert "torch" in manifest["host"]["packages"]


def test_load_accepts_record_files_run_folders_and_results_roots(sample_run, results_dir):
    second = make_run(results_dir, [
        (BenchmarkSpec.create(backend="openvino", device="CPU", workload="gemm"), ok_outcome([5] * 10)),
    ])
    assert len(load(results_dir)) == 4
    assert len(load(sample_run.path, second.path)) == 4
    record_file = next((second.path / "records").glob("*.json"))
    assert load(record_file).iloc[0].backend == "openvino"
    assert set(load(results_dir).run_id) == {sample_run.run_id, second.run_id}


def test_corrupt_record_names_the_file(sample_run):
    victim = next((sample_run.path / "records").glob("*.json"))
    victim.write_text('{"schema_version": 1, "kind": "bakeoff.rec')
    with pytest.raises(ResultsError) as info:
        load(sample_run.path)
    assert str(victim) in str(info.value)
    assert "not valid JSON" in str(info.value)


@pytest.mark.parametrize("content, message", [
    ({"hello": "world"}, "not a bakeoff record file"),
    ([1, 2, 3], "not a bakeoff record file"),
    ({"kind": "bakeoff.record", "schema_version": SCHEMA_VERSION + 1, "spec": {}, "status": "ok"},
     "upgrade bakeoff"),
    ({"kind": "bakeoff.record", "schema_version": "1", "spec": {}, "status": "ok"}, "must be an integer"),
    ({"kind": "bakeoff.record", "schema_version": 1, "status": "ok"}, "missing the required key 'spec'"),
    ({"kind": "bakeoff.record", "schema_version": 1, "spec": {}, "status": "great"}, "status 'great'"),
])
def test_foreign_or_future_records_are_refused(sample_run, content, message):
    victim = next((sample_run.path / "records").glob("*.json"))
    victim.write_text(json.dumps(content))
    with pytest.raises(ResultsError, match=message) as info:
        load(sample_run.path)
    assert victim.name in str(info.value)


def test_missing_paths_and_manifests(tmp_path, sample_run):
    with pytest.raises(ResultsError, match="no such file or folder"):
        load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="holds no runs"):
        load(tmp_path / "empty")
    (sample_run.path / "run.json").write_text("not json")
    with pytest.raises(ResultsError, match="run.json"):
        load(sample_run.path)


def test_resolve_run_by_id_prefix_latest_and_path(sample_run, results_dir):
    assert resolve_run(sample_run.run_id, results_dir) == sample_run.path
    assert resolve_run(sample_run.run_id[:15], results_dir) == sample_run.path
    assert resolve_run("latest", results_dir) == sample_run.path
    assert resolve_run(str(sample_run.path), "elsewhere") == sample_run.path
    with pytest.raises(ResultsError, match="no run 'zzz'"):
        resolve_run("zzz", results_dir)


def test_atomic_write_leaves_old_file_when_serialisation_fails(tmp_path):
    target = tmp_path / "r.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(ValueError):
        atomic_write_json(target, {"a": float("nan")})  # NaN is not JSON
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary files left


def _record_fsyncs(monkeypatch, target=None):
    """Replace os.fsync with one that records what it synced: ``file`` (with the target's contents
    at that moment, to show the file is synced before it is renamed into place) or ``dir``."""
    import os
    import stat

    real, calls = os.fsync, []

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            calls.append("dir")
        else:
            calls.append(("file", target.read_text() if target is not None and target.exists() else None))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def test_atomic_write_fsyncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    from harness.files.atomic import atomic_write

    target = tmp_path / "deep" / "r.json"
    atomic_write_json(target, {"a": 1})
    calls = _record_fsyncs(monkeypatch, target)
    atomic_write_json(target, {"a": 2})
    # The temporary file was synced while the target still held the old contents, then the folder.
    assert calls == [("file", '{\n "a": 1\n}\n'), "dir"]
    assert json.loads(target.read_text()) == {"a": 2}
    calls.clear()
    atomic_write(tmp_path / "blob.bin", lambda fh: fh.write(b"\x00\x01"), binary=True)
    assert [c if c == "dir" else c[0] for c in calls] == ["file", "dir"]
    assert (tmp_path / "blob.bin").read_bytes() == b"\x00\x01"


@pytest.mark.parametrize("binary", [False, True])
def test_atomic_write_failing_mid_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, binary):
    from harness.files.atomic import atomic_write

    target = tmp_path / "r.txt"
    target.write_text("old")
    calls = _record_fsyncs(monkeypatch)

    def half(fh):
        fh.write(b"new, but only h" if binary else "new, but only h")
        fh.flush()
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half, binary=binary)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.txt"]  # the partial temporary file is gone
    assert calls == []  # nothing half-written was synced or renamed


def test_one_atomic_writer_serves_results_cache_and_worker():
    import harness.engine.cache
    import harness.files.atomic
    import harness.results.store

    assert harness.results.store.atomic_write_json is harness.files.atomic.atomic_write_json  # worker.py imports it here
    assert harness.engine.cache.atomic_write is harness.files.atomic.atomic_write
    assert not hasattr(harness.engine.cache, "_atomic_write")


def test_records_appear_as_each_benchmark_finishes(results_dir):
    store = RunStore.create(results_dir)
    assert read_records(store.path) == []
    assert read_manifest(store.path)["status"] == "running"
    store.write(BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm"), ok_outcome([10] * 10))
    assert len(read_records(store.path)) == 1  # readable before the run finishes


def test_server_records_carry_validity_and_no_spread_warning(results_dir):
    spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm", scenario="server")
    outcome = ok_outcome([1_000_000, 9_000_000] * 50)  # queueing makes latencies bimodal
    outcome.scenario = {"name": "server", "metric": {"name": "qps", "value": 50.0, "unit": "queries/s"},
                        "valid": False, "validity_reason": "p99 latency 9 ms > SLO 5 ms"}
    outcome.stopping = {"mode": "schedule"}
    record = build_record("run", spec, outcome)
    assert record["warnings"] == ["invalid server result: p99 latency 9 ms > SLO 5 ms"]
    row = record_to_row(record)
    assert row["scenario"] == "server" and row["valid"] is False and row["metric_value"] == 50.0


def test_adaptive_record_warns_when_the_ci_target_was_missed():
    spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm")
    outcome = ok_outcome([1_000_000] * 20)
    outcome.stopping = {"mode": "adaptive", "target_ci": 0.02, "max_duration_s": 10.0,
                        "target_reached": False, "achieved_ci": 0.035}
    assert "CI target not reached: ±3.5% > ±2.0% after 10 s" in build_record("run", spec, outcome)["warnings"]
