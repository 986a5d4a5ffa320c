"""Efficiency runtimes and formats (issue 20): the precision registry, the Hugging Face folder and
GGUF file made from the llm workload's seeded weights, and the llama-cpp and onnxruntime-genai
backends run for real on the CPU, held to the torch float32 reference."""

from __future__ import annotations

import json

import pytest

import harness
from harness.contract.errors import UserError
from harness.contract.precisions import CLASSIC_PRECISIONS, PRECISIONS, canonical_dtype, precision, weight_bytes
from harness.engine.parity import TOLERANCES
from harness.engine.timing import Stopping


def _records(run_dir) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((run_dir / "records").glob("*.json"))]


def _assert_ran_with_parity(records: dict[str, dict]) -> None:
    """Each record ok, within its format's parity tolerance, with TTFT and TPOT measured."""
    for dtype, record in records.items():
        assert record["status"] == "ok", (dtype, record.get("reason"), record.get("failure"))
        assert record["parity"]["passed"] is True, (dtype, record["parity"])
        assert record["tokens"]["ttft"]["median_s"] > 0 and record["tokens"]["tpot"]["median_s"] > 0


def _tiny_parameters() -> int:
    from workloads.llm import Llm

    return Llm(preset="tiny").parameter_count()


def _run(tmp_path, backend: str, dtypes: list[str], **params) -> dict[str, dict]:
    run_dir = harness.run(backends=[backend], workloads=["llm"], dtypes=dtypes, params={"preset": "tiny", **params},
                          stopping=Stopping(warmup=1).with_fixed_iterations(3), launcher="inline", out=tmp_path)
    return {record["spec"]["dtype"]: record for record in _records(run_dir)}


# -- the registry --------------------------------------------------------------------------------

def test_every_precision_declares_bits_per_weight_and_a_parity_tolerance():
    for name, known in PRECISIONS.items():
        assert known.bits_per_weight > 0 and known.layout and name in TOLERANCES
    assert precision("q4_0").bits_per_weight == 4.5 and precision("q8_0").bits_per_weight == 8.5
    # int4's weight bytes are about an eighth of float32's, plus the scales.
    ratio = weight_bytes(1_000_000, "int4") / weight_bytes(1_000_000, "float32")
    assert 1 / 8 < ratio < 1 / 8 * 1.15
    with pytest.raises(UserError, match="unknown dtype 'int3'.*allowed: float32"):
        precision("int3")


def test_runtime_spellings_are_one_benchmark_under_the_registry_name():
    assert canonical_dtype("f16") == "float16" and canonical_dtype("bf16") == "bfloat16"
    assert canonical_dtype("q4_0") == "q4_0"


def test_a_backend_that_declares_no_precisions_runs_the_classic_four_and_refuses_the_rest_up_front():
    from backends.onnxruntime_backend import OnnxRuntimeBackend
    from backends.torch_backend import TorchBackend
    from harness.engine.runner import backend_precisions, declared_unsupported
    from harness.engine.spec import BenchmarkSpec

    assert backend_precisions(OnnxRuntimeBackend()) == CLASSIC_PRECISIONS
    spec = BenchmarkSpec(backend="torch", device="cpu", workload="llm", params={"preset": "tiny"}, dtype="q4_0")
    reason = declared_unsupported(TorchBackend(), spec)
    assert reason.startswith("torch does not run q4_0") and "llama-cpp" in reason


def test_a_weight_only_format_is_not_called_emulated():
    from harness.hardware.precision import precision_of, precision_warning

    info = {"native_dtypes": ["float32"], "emulated_dtypes": {"bfloat16": "CPU lacks avx512_bf16/amx_bf16"}}
    assert precision_warning(precision_of(info, "q4_0")) is None
    assert precision_of(info, "q4_0")["native"] is None
    assert precision_warning(precision_of(info, "bfloat16")) == "bfloat16 emulated: CPU lacks avx512_bf16/amx_bf16"


def test_a_weight_only_record_is_held_to_the_fastest_peak_not_to_none():
    from harness.hardware.plausibility import compute_peak

    peaks = {"flop_per_s": {"float32": {"value": 1e12, "basis": "a"}, "int8": {"value": 4e12, "basis": "b"}}}
    peak, label = compute_peak(peaks, "q4_0")
    assert peak["value"] == 4e12 and "int8" in label
    assert compute_peak(peaks, "float32")[0]["value"] == 1e12


# -- fp8 -----------------------------------------------------------------------------------------

def test_fp8_is_refused_on_the_cpu_with_the_reason(tmp_path):
    records = _run(tmp_path, "torch", ["fp8"])
    assert records["fp8"]["status"] == "unsupported"
    assert "compute capability >= 8.9" in records["fp8"]["reason"]


def test_fp8_linear_layers_track_the_float32_decoder():
    """The conversion a Hopper-class GPU runs, checked for numerics on the CPU (torch._scaled_mm has
    a CPU kernel; the backend still refuses fp8 there, since no CPU here has float8 units)."""
    import torch

    from backends.torch_backend import fp8_linear_layers
    from workloads.llm import Llm

    workload = Llm(preset="tiny")
    module, facts = fp8_linear_layers(torch, workload.build_module("fp8"), "llm")
    assert facts["layers"] == 2 * 7 + 1 and facts["kept"] == 0
    with torch.inference_mode():
        reference = workload.build_module("float32")(*workload.example_inputs(1, "float32"))[1]
        logits = module(*workload.example_inputs(1, "fp8"))[1].float()
    cosine = torch.nn.functional.cosine_similarity(reference.flatten(), logits.flatten(), dim=0)
    assert cosine >= TOLERANCES["fp8"].min_cosine


# -- the model folder and the GGUF ---------------------------------------------------------------

def test_the_hugging_face_folder_holds_the_workloads_own_weights(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.tools.hf_model import hf_model_dir
    from workloads.llm import Llm

    workload = Llm(preset="tiny")
    folder = hf_model_dir(workload, directory=tmp_path)
    assert not folder.cached and hf_model_dir(workload, directory=tmp_path).cached
    model = AutoModelForCausalLM.from_pretrained(folder.path, dtype=torch.float32).eval()
    ids, key, value = workload.example_inputs(1, "float32")
    with torch.inference_mode():
        theirs = model(ids).logits[:, -1, :]
        ours = workload.build_module("float32")(ids, key, value)[1]
    assert torch.allclose(theirs, ours, atol=1e-5)
    assert len(AutoTokenizer.from_pretrained(folder.path)) == workload.shape.vocab


def test_a_shape_with_qkv_biases_becomes_qwen2(tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    from harness.tools.hf_model import hf_model_dir
    from workloads import llm

    small = llm.DecoderShape(vocab=512, hidden=64, intermediate=128, layers=2, heads=4, kv_heads=2, head_dim=16,
                             rope_theta=1_000_000.0, tie_embeddings=True, attention_bias=True)
    monkeypatch.setitem(llm.PRESETS, "tiny", small)
    workload = llm.Llm(preset="tiny")
    folder = hf_model_dir(workload, directory=tmp_path)
    assert folder.architecture == "Qwen2ForCausalLM"
    model = AutoModelForCausalLM.from_pretrained(folder.path, dtype=torch.float32).eval()
    ids, key, value = workload.example_inputs(1, "float32")
    with torch.inference_mode():
        assert torch.allclose(model(ids).logits[:, -1, :], workload.build_module("float32")(ids, key, value)[1],
                              atol=1e-5)


def test_rotary_rows_are_permuted_as_llama_cpp_expects():
    import numpy as np

    from backends.gguf_model import permute_rotary_rows

    rows = np.arange(8)[:, None]  # one head of dimension 8: halves (0..3 | 4..7) -> pairs (0,4), (1,5)...
    assert permute_rotary_rows(rows, heads=1)[:, 0].tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


# -- the runtimes, for real ----------------------------------------------------------------------

def test_the_efficiency_runtimes_are_available_on_the_cpu():
    from harness.engine.plugins import Registry

    status = {(row.backend, row.info.device if row.info else None): row for row in Registry().all_backend_status()}
    for backend in ("llama-cpp", "onnxruntime-genai", "openvino-genai"):
        row = status[(backend, "cpu")]
        assert row.available, f"{backend}: {row.reason}"


@pytest.mark.slow
def test_llama_cpp_runs_its_formats_with_parity_ttft_and_stored_bytes(tmp_path):
    records = _run(tmp_path, "llama-cpp", ["q4_0", "q8_0", "f16", "float32"])
    assert set(records) == {"q4_0", "q8_0", "float16", "float32"}
    _assert_ran_with_parity(records)
    assert all(r["memory"]["weight_bytes_source"].startswith("tensor bytes of the GGUF") for r in records.values())
    assert records["float32"]["parity"]["mismatched_ids"] == 0  # same tokens as torch
    assert records["float32"]["details"]["kv_cache_type"] == "f32"
    float32 = records["float32"]["memory"]["weight_bytes"]
    assert records["float32"]["memory"]["weight_bytes"] == weight_bytes(_tiny_parameters(), "float32")
    assert 0.125 < records["q4_0"]["memory"]["weight_bytes"] / float32 < 0.25
    assert 0.25 < records["q8_0"]["memory"]["weight_bytes"] / float32 < 0.35
    # The roofline's bytes per decode step use the stored bytes.
    model = records["q4_0"]["details"]["model"]
    assert model["weight_bytes"] == records["q4_0"]["memory"]["weight_bytes"]
    assert model["bytes_per_decode_step"] < records["float32"]["details"]["model"]["bytes_per_decode_step"] / 3


@pytest.mark.slow
def test_llama_cpp_refuses_what_it_does_not_run(tmp_path):
    run_dir = harness.run(backends=["llama-cpp"], workloads=["mlp", "llm"], dtypes=["float32", "int4"],
                          params={"llm.preset": "tiny"}, stopping=Stopping(warmup=0).with_fixed_iterations(2),
                          launcher="inline", out=tmp_path)
    reasons = {(r["spec"]["workload"], r["spec"]["dtype"]): (r["status"], r.get("reason") or "")
               for r in _records(run_dir)}
    assert reasons[("mlp", "float32")][0] == "unsupported" and "llm workload" in reasons[("mlp", "float32")][1]
    assert reasons[("llm", "int4")][0] == "unsupported" and "onnxruntime-genai" in reasons[("llm", "int4")][1]


@pytest.mark.slow
def test_onnxruntime_genai_runs_float32_and_int4_from_its_own_model_builder(tmp_path):
    records = _run(tmp_path, "onnxruntime-genai", ["float32", "int4"])
    _assert_ran_with_parity(records)
    assert records["float32"]["parity"]["mismatched_ids"] == 0
    float32, int4 = (records[d]["memory"]["weight_bytes"] for d in ("float32", "int4"))
    assert float32 == weight_bytes(_tiny_parameters(), "float32")
    # Every weight at 4 bits with a float32 scale per 32 (5 bits), plus the float32 norms.
    assert 1 / 8 < int4 / float32 < 0.22
    assert records["int4"]["precision"]["native"] is None  # weight-only: no "emulated" note
    assert not any("emulated" in w for w in records["int4"].get("warnings", []))


@pytest.mark.slow
def test_openvino_genai_runs_float32_and_nncf_int4_through_llm_pipeline(tmp_path):
    records = _run(tmp_path, "openvino-genai", ["float32", "int4"])
    _assert_ran_with_parity(records)
    assert all(r["details"]["properties"]["INFERENCE_PRECISION_HINT"] == "f32" for r in records.values())
    # The float32 IR holds the workload's own float32 weights: every matrix restored, same tokens.
    assert records["float32"]["details"]["float32_matrices_restored"] == 2 * 7 + 2
    assert records["float32"]["parity"]["mismatched_ids"] == 0
    assert "i4" in records["int4"]["details"]["weight_types"]
    ratio = records["int4"]["memory"]["weight_bytes"] / records["float32"]["memory"]["weight_bytes"]
    assert 1 / 8 < ratio < 0.25  # NNCF keeps the embedding and head at 8 bits (its default backup)


def test_restoring_float32_weights_refuses_a_matrix_it_cannot_place():
    import numpy as np
    import openvino as ov
    from openvino import opset13 as ops

    from backends.openvino_genai_backend import restore_float32_weights

    weight = np.random.default_rng(0).standard_normal((32, 16)).astype(np.float32)
    x = ops.parameter([1, 16], np.float32)
    model = ov.Model([ops.matmul(x, ops.convert(ops.constant(weight.astype(np.float16)), "f32"), False, True)], [x])
    assert restore_float32_weights(model, [("w", weight)]) == 1
    assert [op.get_output_element_type(0).get_type_name() for op in model.get_ops()
            if op.get_type_name() == "Constant"] == ["f32"]
    other = ov.Model([ops.matmul(x, ops.convert(ops.constant(weight.astype(np.float16)), "f32"), False, True)], [x])
    with pytest.raises(RuntimeError, match="matches none"):
        restore_float32_weights(other, [("w", weight + 1)])


# -- latent attention ------------------------------------------------------------------------------

@pytest.mark.parametrize("preset", ["tiny", "tiny-mla"])
def test_kv_bytes_per_token_are_the_bytes_of_the_caches_the_module_returns(preset):
    import torch

    from workloads.llm import Llm

    workload = Llm(preset=preset)
    ids, key, value = workload.example_inputs(1, "float32")
    with torch.inference_mode():
        _, _, present_key, present_value = workload.build_module("float32")(ids, key, value)
    measured = (present_key.numel() * present_key.element_size()
                + present_value.numel() * present_value.element_size()) / ids.shape[1]
    assert workload.kv_bytes_per_token("float32") == measured
    assert workload.parameter_count() == sum(p.numel() for p in workload.build_module("float32").parameters())


def test_latent_attention_caches_less_than_grouped_query_attention_of_the_same_width():
    from workloads.llm import PRESETS, Llm

    assert PRESETS["tiny-mla"].hidden == PRESETS["tiny"].hidden and PRESETS["tiny-mla"].heads == PRESETS["tiny"].heads
    assert Llm(preset="tiny-mla").kv_bytes_per_token("float32") < Llm(preset="tiny").kv_bytes_per_token("float32")
    # DeepSeek-V2-Lite: 27 layers x (512 latent + 64 rotary key) in bfloat16.
    assert Llm(preset="deepseek-v2-lite-mla").kv_bytes_per_token("bfloat16") == 27 * 576 * 2


@pytest.mark.slow
def test_the_mla_preset_runs_on_torch_and_onnxruntime_and_records_its_kv_bytes(tmp_path):
    run_dir = harness.run(backends=["torch", "onnxruntime", "llama-cpp"], workloads=["llm"],
                          params={"preset": "tiny-mla"}, stopping=Stopping(warmup=1).with_fixed_iterations(3),
                          launcher="inline", out=tmp_path)
    records = {r["spec"]["backend"]: r for r in _records(run_dir)}
    for backend in ("torch", "onnxruntime"):
        record = records[backend]
        assert record["status"] == "ok" and record["parity"]["passed"] is True, (backend, record.get("reason"))
        assert record["details"]["model"]["kv_bytes_per_token"] == 2 * (64 + 16) * 4
    assert records["llama-cpp"]["status"] == "unsupported" and "latent-attention" in records["llama-cpp"]["reason"]


@pytest.mark.slow
def test_openvino_genai_serves_overlapping_queries_with_continuous_batching(tmp_path):
    """Two closed-loop clients at once: ContinuousBatchingPipeline, one engine thread stepping it,
    every query's tokens marked, and the greedy tokens still torch's."""
    from harness.engine.scenarios import ServerSettings

    run_dir = harness.run(backends=["openvino-genai"], workloads=["llm"], params={"preset": "tiny"},
                          scenarios=["concurrent"], launcher="inline", out=tmp_path,
                          server=ServerSettings(concurrency=2, min_queries=8, min_duration_s=0.5),
                          stopping=Stopping(warmup=1, max_duration_s=5.0))
    [record] = _records(run_dir)
    assert record["status"] == "ok", (record.get("reason"), record.get("failure"))
    assert record["details"]["pipeline"] == "ContinuousBatchingPipeline"
    assert record["parity"]["passed"] is True and record["parity"]["mismatched_ids"] == 0
    assert record["tokens"]["ttft"]["count"] >= 8
    assert all(count == 16 for count in record["measurement"]["token_counts"])


def test_the_default_sweep_leaves_out_workloads_a_backend_declares_it_does_not_run():
    from harness.orchestration.sweep import SweepRequest, plan

    default = plan(SweepRequest(backends=("llama-cpp", "torch")))
    assert {s.workload for s in default.specs if s.backend == "llama-cpp"} == {"llm"}
    assert "gemm" in {s.workload for s in default.specs if s.backend == "torch"}
    assert any(note.startswith("llama-cpp declares it does not run cnn") for note in default.notes)
    named = plan(SweepRequest(backends=("llama-cpp",), workloads=("gemm",)))
    assert [s.workload for s in named.specs] == ["gemm"]  # named: recorded unsupported with the reason
