"""cnn and moe: tiny presets on every CPU backend with float32 parity; model facts."""

from __future__ import annotations

import pytest

from harness.engine.plugins import Registry
from harness.engine.runner import execute
from harness.engine.spec import BenchmarkSpec
from harness.engine.timing import Stopping
from harness.results.store import build_record
from workloads.cnn import Cnn
from workloads.moe import PRESETS as MOE_PRESETS
from workloads.moe import Moe

CPU_TARGETS = [("torch", "cpu"), ("onnxruntime", "CPUExecutionProvider"), ("openvino", "CPU")]


@pytest.fixture(scope="module")
def registry():
    return Registry()


@pytest.mark.parametrize("backend, device", CPU_TARGETS)
@pytest.mark.parametrize("workload, batch", [("cnn", 2), ("moe", 2)])
def test_tiny_presets_pass_float32_parity_on_every_backend(registry, backend, device, workload, batch):
    spec = BenchmarkSpec.create(backend=backend, device=device, workload=workload, params={"preset": "tiny"},
                                batch_size=batch, stopping=Stopping(warmup=1).with_fixed_iterations(3))
    record = build_record("r", spec, execute(spec, registry))
    assert record["status"] == "ok", record["reason"]
    assert record["parity"]["passed"] is True, record["parity"]


def test_resnet50_has_torchvisions_parameter_count():
    module = Cnn(preset="resnet50").build_module("float32")
    assert sum(p.numel() for p in module.parameters()) == 25_557_032  # torchvision resnet50


def test_moe_reports_active_and_total_parameters():
    workload = Moe(preset="tiny")
    module = workload.build_module("float32")
    assert sum(p.numel() for p in module.parameters()) == workload.parameter_count()
    shape = MOE_PRESETS["tiny"]
    idle = (shape.experts - shape.top_k) * shape.expert_parameters() * shape.decoder.layers
    assert workload.active_parameter_count() == workload.parameter_count() - idle
    narrow = MOE_PRESETS["deepseek-v2-lite-narrow"]
    assert (narrow.experts, narrow.top_k, narrow.shared) == (64, 6, 2)
    assert narrow.expert_intermediate / narrow.decoder.hidden == pytest.approx(1408 / 2048)


def test_moe_dispatch_is_sparse_and_matches_a_dense_reference():
    """Each token's output equals shared(x) + sum over its top-k experts of weight * expert(x)."""
    import torch

    workload = Moe(preset="tiny")
    module = workload.build_module("float32")
    layer = module.blocks[0].mlp
    x = torch.randn(1, 5, 128, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        sparse = layer(x)
        flat = x.reshape(-1, 128)
        scores = torch.softmax(layer.router(flat), dim=-1)
        weights, index = torch.topk(scores, 2, dim=-1)
        dense = layer.shared(flat).clone()
        for row in range(flat.shape[0]):
            for k in range(2):
                dense[row] += weights[row, k] * layer.experts[int(index[row, k])](flat[row:row + 1])[0]
    torch.testing.assert_close(sparse.reshape(-1, 128), dense, rtol=1e-5, atol=1e-5)
