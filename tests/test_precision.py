"""Named precision support: native dtypes from planted CPU flags, CUDA capabilities and runtime
queries, listed by `bakeoff backends --json`, and the note a record at a non-native dtype carries."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from harness.hardware import precision
from harness.presentation.cli import cli
from harness.hardware.precision import (CpuFeatures, capability_precision, cpu_precision, cuda_precision, parse_cpuinfo,
                               precision_of, precision_warning, read_cpu_features)

#: An AVX2-only EPYC (Zen 2): FMA and AVX2, no AVX-512, no VNNI, no bf16.
AVX2_ONLY = ("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B12\n"
             "flags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2 sha_ni\n")
#: A Sapphire Rapids Xeon: AVX-512 with bf16 and fp16, VNNI, AMX.
AMX = ("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
       "flags\t\t: fpu sse sse2 avx f16c fma avx2 avx512f avx512_vnni avx_vnni avx512_bf16 amx_bf16 "
       "avx512_fp16 amx_tile amx_int8\n")
NEOVERSE_N1 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes crc32 atomics fphp asimdhp asimddp\n"


def x86(text: str) -> CpuFeatures:
    return read_cpu_features(lambda: text, lambda: "x86_64")


def test_avx2_only_cpu_computes_only_float32_natively_and_says_why():
    result = cpu_precision(x86(AVX2_ONLY))
    assert result.native == ("float32",)
    assert result.emulated == {"float16": "CPU lacks avx512_fp16/amx_fp16",
                               "bfloat16": "CPU lacks avx512_bf16/amx_bf16",
                               "int8": "CPU lacks avx512_vnni/avx_vnni/amx_int8"}


def test_amx_cpu_computes_bfloat16_float16_and_int8_natively():
    result = cpu_precision(x86(AMX))
    assert set(result.native) == {"float32", "float16", "bfloat16", "int8"} and result.emulated == {}
    # amx_bf16 alone is enough for bfloat16
    assert "bfloat16" in cpu_precision(CpuFeatures("x86_64", frozenset({"avx2", "amx_bf16"}))).native


def test_aarch64_features_line():
    features = read_cpu_features(lambda: NEOVERSE_N1, lambda: "aarch64")
    result = cpu_precision(features)
    assert result.native == ("float32", "float16", "int8")
    assert result.emulated == {"bfloat16": "CPU lacks bf16"}


def test_unknown_architecture_or_no_flags_declares_nothing():
    assert cpu_precision(CpuFeatures("riscv64", frozenset({"rv64imafdc"}))) is None
    assert read_cpu_features(lambda: "", lambda: "x86_64") is None
    assert parse_cpuinfo("model name : x\n") == frozenset()


@pytest.mark.parametrize("capability, native, emulated", [
    ((7, 0), ("float32", "float16", "int8"), {"bfloat16": "sm_70 has no bfloat16 arithmetic (native from sm_80)",
                                               "fp8": "sm_70 has no float8 tensor cores (e4m3 from sm_89, Ada and Hopper)"}),
    ((8, 0), ("float32", "float16", "bfloat16", "int8"),
     {"fp8": "sm_80 has no float8 tensor cores (e4m3 from sm_89, Ada and Hopper)"}),
    ((8, 9), ("float32", "float16", "bfloat16", "int8", "fp8"), {}),
    ((9, 0), ("float32", "float16", "bfloat16", "int8", "fp8"), {}),
    ((6, 1), ("float32", "int8"), {"float16": "sm_61 runs float16 at 1/64 of its float32 rate",
                                   "bfloat16": "sm_61 has no bfloat16 arithmetic (native from sm_80)",
                                   "fp8": "sm_61 has no float8 tensor cores (e4m3 from sm_89, Ada and Hopper)"}),
])
def test_cuda_native_dtypes_follow_the_compute_capability(capability, native, emulated):
    result = cuda_precision(capability)
    assert result.native == native and result.emulated == emulated


def test_runtime_capability_query_with_a_flag_fallback():
    result = capability_precision(["FP32", "INT8", "BIN"], "OpenVINO CPU OPTIMIZATION_CAPABILITIES",
                                  {"int8": (False, "CPU lacks avx512_vnni/avx_vnni/amx_int8")})
    assert result.native == ("float32",)
    assert result.emulated["bfloat16"] == "OpenVINO CPU OPTIMIZATION_CAPABILITIES lacks BF16 (reports FP32, INT8, BIN)"
    assert result.emulated["int8"] == "CPU lacks avx512_vnni/avx_vnni/amx_int8"


def test_record_precision_field_and_note():
    device = {"native_dtypes": ["float32"], "emulated_dtypes": {"bfloat16": "CPU lacks avx512_bf16/amx_bf16"}}
    field = precision_of(device, "bfloat16")
    assert field == {"dtype": "bfloat16", "native": False, "reason": "CPU lacks avx512_bf16/amx_bf16"}
    assert precision_warning(field) == "bfloat16 emulated: CPU lacks avx512_bf16/amx_bf16"
    assert precision_warning(precision_of(device, "float32")) is None
    undeclared = precision_of({}, "bfloat16")
    assert undeclared["native"] is None and precision_warning(undeclared) is None


@pytest.fixture
def planted_cpu(monkeypatch):
    """Plant a CPU for everything in this process that reads the flags."""
    def plant(text: str) -> None:
        monkeypatch.setattr(precision, "read_cpuinfo", lambda: text)
        monkeypatch.setattr(precision, "host_machine", lambda: "x86_64")
    return plant


@pytest.mark.parametrize("cpuinfo, bf16_native", [(AVX2_ONLY, False), (AMX, True)])
def test_backends_json_lists_native_dtypes_per_device(planted_cpu, cpuinfo, bf16_native):
    planted_cpu(cpuinfo)
    result = CliRunner().invoke(cli, ["backends", "--json"], prog_name="bakeoff")
    assert result.exit_code == 0, result.output
    rows = {(r["backend"], r["device"]): r for r in json.loads(result.stdout)}
    for key in [("torch", "cpu"), ("onnxruntime", "CPUExecutionProvider")]:
        row = rows[key]
        assert ("bfloat16" in row["native_dtypes"]) is bf16_native, row
        if not bf16_native:
            assert row["native_dtypes"] == ["float32"]
            assert row["emulated_dtypes"]["bfloat16"] == "CPU lacks avx512_bf16/amx_bf16"
        # the CPU's peak formula travels with the device
        peak = row["peaks"]["flop_per_s"]["bfloat16"]
        assert peak["value"] > 0 and "CPUs x" in peak["basis"]
        assert ("amx_bf16" in peak["basis"]) is bf16_native


def test_record_at_an_emulated_dtype_carries_the_note(planted_cpu):
    from harness.engine.plugins import Registry
    from harness.engine.runner import execute
    from harness.engine.spec import BenchmarkSpec
    from harness.presentation.tables import record_cells
    from harness.results.store import build_record

    planted_cpu(AVX2_ONLY)
    spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm", params={"size": 32},
                                dtype="bfloat16", iterations=3)
    record = build_record("r", spec, execute(spec, Registry()))
    assert record["status"] == "ok", record["reason"]
    assert record["precision"] == {"dtype": "bfloat16", "native": False, "reason": "CPU lacks avx512_bf16/amx_bf16"}
    assert "bfloat16 emulated: CPU lacks avx512_bf16/amx_bf16" in record["warnings"]
    assert "bfloat16 emulated: CPU lacks avx512_bf16/amx_bf16" in record_cells(record)["notes"]

    planted_cpu(AMX)
    record = build_record("r", spec, execute(spec, Registry()))
    assert record["precision"]["native"] is True
    assert not any("emulated" in w for w in record["warnings"])
