"""harness.tools.export, the public way to a workload's model for non-torch runtimes, and the
worked example of docs/writing-a-backend.md ("The model without torch"), run as written."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from harness.engine.plugins import Registry
from harness.tools.export import ExportedModel, export_generative, export_onnx
import harness.tools.export
from workloads.llm import Llm

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "writing-a-backend.md"
MARKER = "<!-- tests/test_export_api.py runs the next block as is -->"


def guide_example() -> str:
    """The python block right after the marker in the guide's export section."""
    text = GUIDE.read_text()
    assert text.count(MARKER) == 1, "the guide's export example lost its marker"
    match = re.match(r"\s*```python\n(.*?)```", text.split(MARKER, 1)[1], flags=re.S)
    assert match, "the marker must be followed by a ```python block"
    return match.group(1)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The guide's example exports to the default cache: point it at a fresh folder."""
    monkeypatch.setenv("BAKEOFF_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def guide_namespace(cache):
    namespace: dict = {"__name__": "guide_example"}
    exec(compile(guide_example(), str(GUIDE), "exec"), namespace)  # asserts parity itself
    return namespace


def test_the_guides_numpy_backend_example_runs_and_matches_the_reference(guide_namespace, cache):
    exported = guide_namespace["exported"]
    assert isinstance(exported, ExportedModel) and not exported.cache_hit
    # Cached where the guide says, under the documented folder name.
    assert exported.path.parent.parent == cache / "onnx"
    assert exported.path.parent.name == f"mlp-float32-b4-{exported.content_hash}"
    workload, outputs = guide_namespace["workload"], guide_namespace["outputs"]
    np.testing.assert_allclose(outputs[0], workload.reference_outputs(4)[0], rtol=1e-4, atol=1e-5)
    assert [op for op, _, _ in guide_namespace["nodes"]] == ["Gemm", "Gelu", "Gemm", "Add"] * 2
    assert export_onnx(workload, "float32", batch_size=4).cache_hit  # "the next call is a cache hit"


def test_the_guides_run_graph_also_runs_gemm(guide_namespace):
    workload = Registry().workload("gemm", {"size": 8})
    exported = export_onnx(workload, "float32", 3)
    graph = onnx.load(str(exported.path)).graph
    assert [n.op_type for n in graph.node] == ["MatMul"]
    assert [i.name for i in graph.input] == list(workload.input_names) == ["a", "b"]
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    feeds = {name: t.numpy() for name, t in zip(workload.input_names, workload.example_inputs(3, "float32"))}
    outputs = guide_namespace["run_graph"](graph, weights, feeds)
    np.testing.assert_allclose(outputs[0], workload.reference_outputs(3)[0], rtol=1e-5, atol=1e-5)


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_mlp_weights_are_the_documented_initializers_and_a_hand_written_forward_matches(tmp_path):
    """The weights' documented names and layouts, used without walking the graph at all."""
    workload = Registry().workload("mlp", {"hidden": 32, "expansion": 3, "layers": 3})
    exported = export_onnx(workload, "float32", 5, directory=tmp_path)
    graph = onnx.load(str(exported.path)).graph
    assert [(i.name, _dims(i)) for i in graph.input] == [("x", [5, 32])]
    assert [(o.name, _dims(o)) for o in graph.output] == [("y", [5, 32])]
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    state = workload.build_module("float32").state_dict()
    assert set(weights) == set(state)  # named as the module's state_dict
    for name, tensor in state.items():
        assert weights[name].dtype == np.float32
        np.testing.assert_array_equal(weights[name], tensor.numpy())  # [out, in], as torch keeps them
    assert weights["0.up.weight"].shape == (96, 32) and weights["0.down.weight"].shape == (32, 96)

    erf = np.vectorize(math.erf, otypes=[np.float64])
    x = workload.example_inputs(5, "float32")[0].numpy()
    for block in range(3):
        inner = x @ weights[f"{block}.up.weight"].T + weights[f"{block}.up.bias"]
        inner = (0.5 * inner * (1 + erf(inner / math.sqrt(2)))).astype(np.float32)
        x = x + inner @ weights[f"{block}.down.weight"].T + weights[f"{block}.down.bias"]
    np.testing.assert_allclose(x, workload.reference_outputs(5)[0], rtol=1e-4, atol=1e-5)


def test_generative_graphs_have_the_documented_inputs_outputs_and_kv_layout(tmp_path):
    workload = Llm(preset="tiny")
    kv = workload.kv_layout()
    prefill, decode = export_generative(workload, "float32", directory=tmp_path)
    assert prefill.path.parent.name.startswith("llm-prefill-float32-")
    assert decode.path.parent.name.startswith("llm-decode-float32-")
    L, H, D, V = kv.layers, kv.kv_heads, kv.head_dim, workload.vocab_size
    elem = onnx.TensorProto

    def signature(values):
        return {v.name: (v.type.tensor_type.elem_type, _dims(v)) for v in values}

    prefill_graph = onnx.load(str(prefill.path), load_external_data=False).graph
    assert signature(prefill_graph.input) == {"input_ids": (elem.INT64, ["batch", "tokens"])}
    assert [o.name for o in prefill_graph.output] == list(harness.tools.export.GENERATIVE_OUTPUTS)
    prefill_out = signature(prefill_graph.output)
    assert prefill_out["next_token"] == (elem.INT64, ["batch", 1])
    assert prefill_out["logits"] == (elem.FLOAT, ["batch", V])
    for name in ("present_key", "present_value"):
        assert prefill_out[name] == (elem.FLOAT, [L, "batch", H, "tokens", D])  # [layers, batch, kv_heads, tokens, head_dim]

    decode_graph = onnx.load(str(decode.path), load_external_data=False).graph
    assert [i.name for i in decode_graph.input] == ["input_ids", "past_key", "past_value"]
    decode_in, decode_out = signature(decode_graph.input), signature(decode_graph.output)
    assert decode_in["input_ids"] == (elem.INT64, ["batch", 1])
    for name in ("past_key", "past_value"):
        assert decode_in[name] == (elem.FLOAT, [L, "batch", H, "past", D])
    for name in ("present_key", "present_value"):
        elem_type, dims = decode_out[name]
        assert elem_type == elem.FLOAT and dims[:3] == [L, "batch", H] and dims[4] == D
        assert isinstance(dims[3], str) and "past" in dims[3]  # past + 1, symbolic
    assert [o.name for o in decode_graph.output] == list(harness.tools.export.GENERATIVE_OUTPUTS)
    # The weights' documented names: decoder.<state_dict name> in prefill, <state_dict name> in decode.
    assert "decoder.embed.weight" in {t.name for t in prefill_graph.initializer}
    assert "embed.weight" in {t.name for t in decode_graph.initializer}


def test_a_user_onnx_file_is_returned_as_is(tmp_path):
    class UserModel:
        onnx_path = tmp_path / "model.onnx"

    exported = export_onnx(UserModel(), "float32", 1)
    assert exported == ExportedModel(tmp_path / "model.onnx", True, "user-supplied ONNX file", 0.0, "")


def test_the_old_module_is_the_same_api():
    import backends.onnx_export as old

    for name in ("ExportedModel", "export_onnx", "export_generative", "export_module", "content_hash",
                 "cache_dir", "EXPORT_FORMAT_VERSION"):
        assert getattr(old, name) is getattr(harness.tools.export, name)


def test_the_export_api_is_documented_and_imports_nothing_heavy():
    for name in harness.tools.export.__all__:
        obj = getattr(harness.tools.export, name)
        if callable(obj):
            assert obj.__doc__ and len(obj.__doc__) > 40, name
    for name in ("input_names", "output_names", "initializer", "numpy_helper", "BAKEOFF_CACHE_DIR",
                 "[layers, batch, kv_heads, tokens, head_dim]"):
        assert name in harness.tools.export.__doc__ + harness.tools.export.export_generative.__doc__, name
    code = ("import sys, harness.tools.export\n"
            "print([m for m in ('torch', 'onnx', 'onnxruntime', 'openvino', 'numpy') if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().replace("'", '"')) == []
