"""Run-time plausibility: planted peaks and rates for the pure check, the CPU peak formula on
planted flags, catalog peaks, the memory check, and an `unsynchronized` backend's gemm
marked implausible and left out of `bakeoff rank`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.hardware.catalog import load_catalog
from harness.presentation.cli import cli
from harness.hardware.plausibility import (ASSUMED_MAX_HZ, SLACK, assess, catalog_entry, catalog_peaks, cpu_peaks,
                                  flop_per_cycle, known_peaks, merge_peaks, read_max_clock_hz)
from harness.engine.runner import Measurement, Outcome
from harness.engine.spec import BenchmarkSpec
from harness.hardware.precision import CpuFeatures
from harness.presentation.tables import record_cells
from harness.procurement.rank import rank
from harness.results.record import rankable
from harness.results.store import build_record, read_records

DOCS = Path(__file__).resolve().parent.parent / "docs"
AVX2 = CpuFeatures("x86_64", frozenset({"sse2", "avx", "fma", "avx2"}))
SAPPHIRE_RAPIDS = CpuFeatures("x86_64", frozenset({"avx", "avx2", "avx512f", "avx512_bf16", "avx512_fp16",
                                                  "avx512_vnni", "amx_bf16", "amx_int8"}))


def peaks(flop_per_s=None, bytes_per_s=None, basis="planted"):
    return {"flop_per_s": {d: {"value": v, "basis": basis} for d, v in (flop_per_s or {}).items()},
            "bytes_per_s": {"value": bytes_per_s, "basis": basis} if bytes_per_s else None}


# -- the CPU formula -----------------------------------------------------------------------------

def test_cpu_peak_is_cores_times_clock_times_flop_per_cycle():
    result = cpu_peaks(AVX2, 2, 3.0e9, "planted")
    # 2 CPUs x 3 GHz x (2 FMA pipes x 8 float32 lanes x 2 FLOP) = 192 GFLOP/s
    assert result["flop_per_s"]["float32"]["value"] == pytest.approx(192e9)
    assert result["flop_per_s"]["float32"]["basis"] == "2 CPUs x 3 GHz x 32 FLOP/cycle, avx/avx2: 2 x 256-bit FMA pipes"
    # no bf16 unit: it runs through float32, so the float32 peak bounds it
    assert result["flop_per_s"]["bfloat16"]["value"] == result["flop_per_s"]["float32"]["value"]
    assert result["inputs"]["cpus"] == 2 and result["inputs"]["max_clock_hz"] == 3.0e9
    assert result["bytes_per_s"] is None  # flags say nothing about memory bandwidth


def test_amx_and_avx512_raise_the_peak_per_dtype():
    table = flop_per_cycle(SAPPHIRE_RAPIDS)
    assert table["float32"][0] == 64  # 2 x 512-bit FMA
    assert table["float16"][0] == 128  # avx512_fp16
    assert table["bfloat16"] == (1024.0, "amx_bf16 tiles")
    assert table["int8"] == (2048.0, "amx_int8 tiles")
    assert flop_per_cycle(CpuFeatures("riscv64", frozenset())) is None
    assert cpu_peaks(CpuFeatures("riscv64", frozenset()), 2, 3e9, "x") == {}
    assert cpu_peaks(AVX2, None, 3e9, "x") == {}


def test_max_clock_from_cpufreq_else_a_generous_assumption():
    assert read_max_clock_hz(lambda path: "3700000\n")[0] == 3.7e9  # kHz

    def missing(path):
        raise FileNotFoundError(path)

    clock, source = read_max_clock_hz(missing, current_mhz=2100.0)
    assert clock == ASSUMED_MAX_HZ and "assumed" in source


# -- the pure check ------------------------------------------------------------------------------

def test_a_rate_above_the_peak_is_implausible_with_the_reason():
    result = assess(unit="FLOP", dtype="float32", throughput_per_s=3108e12, work_per_step=2.1e9,
                    flops_per_step=None, peaks=peaks({"float32": 4.2e12}, basis="2 CPUs x 2.1 GHz x 1024"))
    assert result["verdict"] == "implausible"
    assert result["reason"].startswith("3108 TFLOP/s exceeds this device's float32 peak of 4.2 TFLOP/s "
                                       "(2 CPUs x 2.1 GHz x 1024): synchronize() probably returns")
    check = result["checks"][0]
    assert (check["check"], check["achieved"], check["peak"], check["unit"]) == ("compute", 3108e12, 4.2e12, "FLOP/s")


def test_a_rate_within_the_peak_and_its_slack_is_ok():
    planted = peaks({"float32": 100e9})
    ok = assess(unit="FLOP", dtype="float32", throughput_per_s=100e9 * SLACK * 0.99, work_per_step=1.0,
                flops_per_step=None, peaks=planted)
    assert ok["verdict"] == "ok" and "of this device's float32 peak" in ok["reason"]
    over = assess(unit="FLOP", dtype="float32", throughput_per_s=100e9 * SLACK * 1.01, work_per_step=1.0,
                  flops_per_step=None, peaks=planted)
    assert over["verdict"] == "implausible"


def test_other_units_are_checked_only_where_the_workload_gives_flops_or_bytes():
    planted = peaks({"float32": 1e12}, bytes_per_s=100e9)
    # 1e6 sample/s x 4e6 FLOP per step / 1 sample per step = 4 PFLOP/s
    samples = assess(unit="sample", dtype="float32", throughput_per_s=1e6, work_per_step=1.0,
                     flops_per_step=4e6, peaks=planted)
    assert samples["verdict"] == "implausible" and samples["checks"][0]["achieved"] == pytest.approx(4e12)
    tokens = assess(unit="token", dtype="float32", throughput_per_s=1e9, work_per_step=1.0,
                    flops_per_step=None, peaks=planted)
    assert tokens["verdict"] == "not checked"
    assert "the workload gives no FLOPs or bytes per token" in tokens["reason"]
    bandwidth = assess(unit="B", dtype="float32", throughput_per_s=900e9, work_per_step=1.0,
                       flops_per_step=None, peaks=planted)
    assert bandwidth["verdict"] == "implausible" and bandwidth["checks"][0]["check"] == "bandwidth"
    assert "memory bandwidth of 100 GB/s" in bandwidth["reason"]
    unknown = assess(unit="FLOP", dtype="bfloat16", throughput_per_s=1e15, work_per_step=1.0,
                     flops_per_step=None, peaks=planted)
    assert unknown["verdict"] == "not checked" and "no known bfloat16 peak" in unknown["reason"]


def test_device_peak_memory_below_the_workloads_own_bytes_is_implausible():
    common = dict(unit="FLOP", dtype="float32", throughput_per_s=None, work_per_step=1.0, flops_per_step=None,
                  peaks={}, weight_bytes=0, input_bytes=8 << 20)
    low = assess(device_peak_bytes=8 << 10, **common)  # a peak reported in KiB, read as bytes
    assert low["verdict"] == "implausible"
    assert low["reason"] == ("device peak memory 8 KiB is below the workload's own weights + inputs (8 MiB): "
                             "peak_memory_bytes() probably reports another unit or another counter")
    assert assess(device_peak_bytes=9 << 20, **common)["verdict"] == "ok"
    assert assess(device_peak_bytes=None, **common)["verdict"] == "not checked"


# -- catalog peaks -------------------------------------------------------------------------------

def test_catalog_peaks_need_the_pattern_as_a_whole_model_number():
    catalog = load_catalog()
    assert catalog_entry(catalog, "NVIDIA H100 80GB HBM3")["id"] == "nvidia-h100-sxm5"
    assert catalog_entry(catalog, "NVIDIA H20")["id"] == "nvidia-h20"
    # "H20" is a substring of "H200", but not its model number: its peak would flag a real H200,
    # which has its own entry; a longer number neither pattern names stays unmatched
    assert catalog.match("NVIDIA H200")["id"] == "nvidia-h200-sxm"
    assert catalog_entry(catalog, "NVIDIA H2000") is None
    # a letter-ended pattern still takes the variants of its chip
    assert catalog_entry(catalog, "Ascend910B3")["id"] == catalog_entry(catalog, "Ascend 910B")["id"]
    h100 = catalog_peaks(catalog.entries["nvidia-h100-sxm5"])
    assert h100["flop_per_s"]["bfloat16"]["value"] == pytest.approx(989.4e12)
    assert h100["flop_per_s"]["int8"]["value"] == pytest.approx(1978.9e12)
    assert h100["bytes_per_s"]["value"] == pytest.approx(3350e9)
    assert known_peaks({"model": "NVIDIA H100 80GB HBM3"}, catalog)["bytes_per_s"]["value"] == pytest.approx(3350e9)
    # a candidate of 8 devices (an endpoint on "8x H100") may do 8 devices' work
    eight = known_peaks({"model": "8x NVIDIA H100"}, catalog)["flop_per_s"]["float16"]
    assert eight["value"] == pytest.approx(8 * 989.4e12) and eight["basis"].startswith("8 x catalog")


def test_merged_peaks_take_the_larger_figure():
    merged = merge_peaks(peaks({"float32": 1e12}, 1e9, "declared"), peaks({"float32": 2e12}, None, "catalog"))
    assert merged["flop_per_s"]["float32"] == {"value": 2e12, "basis": "catalog"}
    assert merged["bytes_per_s"] == {"value": 1e9, "basis": "declared"}


# -- records, rankable, rank ---------------------------------------------------------------------

def _outcome(latency_ns: int, **extra) -> Outcome:
    spec_peaks = peaks({"float32": 1e12}, basis="planted peak")
    return Outcome(status="ok", measurement=Measurement(tuple([latency_ns] * 12), 1, "perf_counter_ns", 1.0),
                   unit="FLOP", work_per_step=2.0 * 1024 ** 3,
                   device_info={"model": "Planted device", "peaks": spec_peaks},
                   scenario={"name": "single-stream", "valid": True, "validity_reason": "ok"}, **extra)


def test_an_implausible_record_is_marked_shown_and_never_rankable():
    spec = BenchmarkSpec.create(backend="null", device="fake", workload="gemm", iterations=12)
    record = build_record("r", spec, _outcome(1_000))  # 2.1 GFLOP in 1 us = 2147 TFLOP/s > 1 TFLOP/s
    assert record["plausibility"]["verdict"] == "implausible"
    assert record["warnings"][0].startswith("implausible: 2147 TFLOP/s exceeds this device's float32 peak of 1 TFLOP/s")
    assert record_cells(record)["status"] == "implausible"
    assert rankable(record) is False
    excluded = rank([record], load_catalog([DOCS / "catalog.example.toml"])).excluded
    assert excluded[0]["excluded_by"][0].startswith("implausible: 2147 TFLOP/s exceeds")

    plausible = build_record("r", spec, _outcome(10_000_000))  # 215 GFLOP/s
    assert plausible["plausibility"]["verdict"] == "ok" and rankable(plausible)

    from harness.procurement.compare import compare

    result = compare([plausible], [record])
    assert result.not_comparable[0]["reason"] == "new: ok (implausible)"


def test_a_record_whose_device_peak_memory_is_below_its_inputs_is_implausible():
    spec = BenchmarkSpec.create(backend="null", device="fake", workload="gemm", iterations=12)
    memory = {"device_peak_bytes": 1024, "weight_bytes": 0, "input_bytes": 8 << 20}
    record = build_record("r", spec, _outcome(10_000_000, memory=memory, peak_device_memory_bytes=1024))
    assert record["plausibility"]["verdict"] == "implausible"
    assert [c["verdict"] for c in record["plausibility"]["checks"]] == ["ok", "implausible"]
    assert not rankable(record)


def test_workload_input_bytes_match_the_inputs_they_build():
    from harness.engine.plugins import Registry

    registry = Registry()
    for name, params in (("gemm", {"size": 48}), ("membw", {"size_mib": 1}), ("mlp", {"hidden": 16})):
        workload = registry.workload(name, params)
        for dtype in ("float32", "bfloat16", "int8"):
            built = sum(t.numel() * t.element_size() for t in workload.example_inputs(3, dtype))
            assert workload.input_bytes(3, dtype) == built, (name, dtype)


def _gemm_size_beyond_the_peak(seconds_at_peak: float = 0.05) -> int:
    """The smallest power-of-two gemm size (>= 1024) whose work takes ``seconds_at_peak`` at this
    host's generous float32 peak, so an enqueue (microseconds, even with the GIL handed over
    under load: <= 5 ms) is certainly beyond the peak on any CPU this test meets."""
    from harness.hardware.plausibility import host_cpu_peaks
    from harness.hardware.precision import read_cpu_features

    peak = host_cpu_peaks(read_cpu_features())["flop_per_s"]["float32"]["value"]
    size = 1024
    while 2.0 * size ** 3 < peak * seconds_at_peak:
        size *= 2
    return size


def test_unsynchronized_backend_gemm_is_implausible_and_not_ranked(test_plugins, results_dir):
    """`unsynchronized` times only the enqueue of a gemm sized to take 50 ms at this CPU's
    peak, so its rate is far above the peak; `queued` waits for the work and stays below it."""
    size = _gemm_size_beyond_the_peak()
    runs = {}
    for backend, gemm in (("unsynchronized", size), ("queued", 1024)):
        run = CliRunner().invoke(cli, ["run", "-b", backend, "-d", "queue0", "-w", "gemm", "-p", f"size={gemm}",
                                       "--launcher", "inline", "--iterations", "10", "--warmup", "1",
                                       "--out", str(results_dir), "--json"], prog_name="bakeoff")
        assert run.exit_code == 0, run.output
        runs[backend] = json.loads(run.stdout)["run_dir"]
    bad = read_records(Path(runs["unsynchronized"]))[0]
    good = read_records(Path(runs["queued"]))[0]
    assert bad["status"] == "ok" and bad["parity"]["passed"] is True  # what the run used to accept
    assert bad["plausibility"]["verdict"] == "implausible", bad["plausibility"]
    assert "synchronize() probably returns before the work is done" in bad["plausibility"]["reason"]
    assert good["plausibility"]["verdict"] == "ok", good["plausibility"]
    assert not rankable(bad) and rankable(good)

    ranked = CliRunner().invoke(cli, ["rank", runs["unsynchronized"], runs["queued"], "--json"], prog_name="bakeoff")
    assert ranked.exit_code == 0, ranked.output
    excluded = {e["candidate"].split("/")[0]: e["excluded_by"] for e in json.loads(ranked.stdout)["excluded"]}
    assert excluded["unsynchronized"][0].startswith("implausible: ")
    # plausible: excluded only as what gemm is, a capability probe (never priced per FLOP)
    assert excluded["queued"][0].startswith("a capability probe (FLOP/s)")
