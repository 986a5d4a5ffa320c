"""The llm workload: KV-cache correctness, presets, and parity on every CPU backend."""

from __future__ import annotations

import onnx
import pytest
import torch

from harness.analysis.tokens import token_metrics
from harness.engine.plugins import Registry
from harness.engine.runner import execute
from harness.engine.spec import BenchmarkSpec
from harness.engine.timing import Stopping
from harness.results.store import build_record
from harness.tools.export import export_generative
from workloads.llm import PRESETS, Llm

CPU_TARGETS = [("torch", "cpu"), ("onnxruntime", "CPUExecutionProvider"), ("openvino", "CPU")]


def test_presets_have_the_public_models_parameter_counts():
    assert PRESETS["tiny"].parameter_count() < 10e6
    assert 90e6 < PRESETS["100m"].parameter_count() < 110e6
    assert PRESETS["qwen2.5-0.5b"].parameter_count() == pytest.approx(494e6, rel=0.01)  # Qwen's model card
    assert PRESETS["llama-3.2-1b"].parameter_count() == pytest.approx(1.236e9, rel=0.01)
    module = Llm(preset="tiny").build_module("float32")
    assert sum(p.numel() for p in module.parameters()) == PRESETS["tiny"].parameter_count()


def test_incremental_decode_with_the_kv_cache_equals_full_recompute():
    workload = Llm(preset="tiny", prompt_tokens=8, new_tokens=6)
    tokens, _ = workload.reference_outputs(2)
    module = workload.build_module("float32")
    sequence = torch.cat([workload.prompt(2), torch.from_numpy(tokens[:, :-1])], dim=1)
    key, value = workload.empty_cache(2, "float32")
    with torch.inference_mode():
        next_token, _, present_key, _ = module(sequence, key, value)
    assert next_token.squeeze(1).tolist() == tokens[:, -1].tolist()
    assert present_key.shape == (2, 2, 2, 8 + 5, 32)  # [layers, batch, kv heads, positions, head dim]


def test_exported_prefill_and_decode_graphs_pass_the_checker_and_have_dynamic_axes(tmp_path):
    prefill, decode = export_generative(Llm(preset="tiny"), "float32", directory=tmp_path)
    for exported in (prefill, decode):
        onnx.checker.check_model(str(exported.path))
    graph = onnx.load(str(decode.path), load_external_data=False).graph
    past = next(i for i in graph.input if i.name == "past_key")
    dims = [d.dim_param or d.dim_value for d in past.type.tensor_type.shape.dim]
    assert isinstance(dims[1], str) and isinstance(dims[3], str)  # batch and past length are symbolic


@pytest.mark.parametrize("backend, device", CPU_TARGETS)
def test_tiny_llm_passes_parity_at_float32_and_reports_token_metrics(backend, device):
    spec = BenchmarkSpec.create(backend=backend, device=device, workload="llm", params={"preset": "tiny"},
                                batch_size=2, stopping=Stopping(warmup=1).with_fixed_iterations(4))
    record = build_record("r", spec, execute(spec, Registry()))
    assert record["status"] == "ok", record["reason"]
    assert record["parity"]["passed"] is True, record["parity"]
    assert record["parity"]["mismatched_ids"] == 0
    tokens = record["tokens"]
    for metric in ("ttft", "tpot", "itl", "e2e"):
        assert tokens[metric]["median_s"] > 0
    assert tokens["ttft"]["median_s"] < tokens["e2e"]["median_s"]
    assert tokens["output_tokens_per_s"]["unit"] == "token/s"
    assert record["throughput"]["unit"] == "token/s"
    assert record["details"]["model"]["parameters"] == PRESETS["tiny"].parameter_count()


def test_int8_runs_where_supported_and_records_its_deviation():
    registry = Registry()
    for backend, device in CPU_TARGETS:
        spec = BenchmarkSpec.create(backend=backend, device=device, workload="llm", params={"preset": "tiny"},
                                    dtype="int8", stopping=Stopping(warmup=0).with_fixed_iterations(2))
        record = build_record("r", spec, execute(spec, registry))
        assert record["status"] == "ok", record["reason"]
        assert record["parity"]["max_abs_error"] > 0  # really quantized, not float32 in disguise
        assert record["parity"]["cosine"] >= 0.98


def test_int8_refuses_a_workload_without_weights():
    registry = Registry()
    for backend, device in CPU_TARGETS:
        spec = BenchmarkSpec.create(backend=backend, device=device, workload="gemm", params={"size": 16},
                                    dtype="int8", iterations=2)
        outcome = execute(spec, registry)
        assert outcome.status == "unsupported"
        assert "would run in float32" in outcome.reason


def test_token_metrics_by_hand():
    # two requests, tokens at 10, 12, 15 ms and 20, 21, 22 ms from their starts
    ms = 1_000_000
    metrics = token_metrics([[10 * ms, 12 * ms, 15 * ms], [20 * ms, 21 * ms, 22 * ms]], batch_size=1,
                            elapsed_ns=50 * ms)
    assert metrics["ttft"]["median_s"] == pytest.approx(0.015)
    assert metrics["e2e"]["median_s"] == pytest.approx(0.0185)
    assert metrics["tpot"]["median_s"] == pytest.approx((0.0025 + 0.001) / 2)  # (5/2 ms, 2/2 ms)
    assert metrics["itl"]["count"] == 4 and metrics["itl"]["median_s"] == pytest.approx(0.0015)
    # Aggregate: both requests' 6 tokens over the 50 ms timed span.
    assert metrics["output_tokens_per_s"]["value"] == pytest.approx(6 / 0.05)
