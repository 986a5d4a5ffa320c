"""Bring your own model: an ONNX file or a torch module factory, and clear errors for bad ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from harness.presentation.cli import cli
from harness.results.frame import load

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def onnx_file(tmp_path):
    """A buyer's model: a small embedding + linear classifier exported to ONNX."""

    class TextClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(100, 16)
            self.head = torch.nn.Linear(16, 3)

        def forward(self, input_ids, scale):
            return self.head(self.embed(input_ids).mean(dim=1)) * scale

    path = tmp_path / "classifier.onnx"
    torch.manual_seed(0)
    torch.onnx.export(TextClassifier().eval(), (torch.zeros(1, 12, dtype=torch.long), torch.ones(1, 3)),
                      str(path), input_names=["input_ids", "scale"], output_names=["logits"], dynamo=False,
                      dynamic_axes={"input_ids": {0: "batch"}, "scale": {0: "batch"}, "logits": {0: "batch"}})
    return path


def invoke(*args):
    return CliRunner().invoke(cli, list(args), prog_name="bakeoff")


def test_onnx_model_runs_on_onnx_backends_and_torch_declines(onnx_file, tmp_path):
    result = invoke("run", "--model", str(onnx_file), "--input", "input_ids:1x12:int64", "--input", "scale:1x3:float32",
                    "--batch-size", "2", "--iterations", "5", "--launcher", "inline", "--out", str(tmp_path / "r"),
                    "--json")
    assert result.exit_code == 0, result.output
    records = {r["spec"]["backend"]: r for r in json.loads(result.stdout)["records"]}
    for backend in ("onnxruntime", "openvino"):
        assert records[backend]["status"] == "ok", records[backend]["reason"]
        assert records[backend]["parity"]["passed"] is True
    assert records["torch"]["status"] == "unsupported"
    frame = load(tmp_path / "r")
    assert set(frame.unit) == {"inference"} and (frame["param.path"] == str(onnx_file)).all()


def test_torch_model_factory_runs_everywhere(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    result = invoke("run", "--model-factory", "models.factories:two_layer_classifier", "--input", "x:4x16:float32",
                    "--iterations", "5", "--launcher", "inline", "--out", str(tmp_path / "r"), "--json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)["records"]
    assert {r["spec"]["backend"] for r in records} >= {"torch", "onnxruntime", "openvino"}
    assert all(r["status"] == "ok" and r["parity"]["passed"] for r in records
               if r["spec"]["backend"] in ("torch", "onnxruntime", "openvino"))


@pytest.mark.parametrize("make_args, fragments", [
    (lambda p, t: ["--model", str(t / "missing.onnx"), "--input", "x:1:float32"], ["missing.onnx: no such model file"]),
    (lambda p, t: ["--model", str(t / "junk.onnx"), "--input", "x:1:float32"], ["junk.onnx: not a valid ONNX model"]),
    (lambda p, t: ["--model", str(p), "--input", "input_ids:1x12:int64"], ["input 'scale' needs a --input"]),
    (lambda p, t: ["--model", str(p), "--input", "ids:1x12:int64", "--input", "scale:1x3:float32"],
     ["--input 'ids'", "has no such input"]),
    (lambda p, t: ["--model", str(p), "--input", "input_ids:1x12x5:int64", "--input", "scale:1x3:float32"],
     ["rank 3", "expects rank 2"]),
    (lambda p, t: ["--model", str(p), "--input", "input_ids:12:int4"], ["dtype 'int4'"]),
    (lambda p, t: ["--model", str(p), "--input", "input_ids-12"], ["expected NAME:SHAPE:DTYPE"]),
    (lambda p, t: ["--model", str(p)], ["need --input"]),
    (lambda p, t: ["--input", "x:1:float32"], ["give one of them"]),
    (lambda p, t: ["--model-factory", "nowhere.at_all:make", "--input", "x:1:float32"], ["cannot import"]),
    (lambda p, t: ["--model-factory", "json", "--input", "x:1:float32"], ["expected package.module:function"]),
])
def test_bad_models_are_one_line_errors(onnx_file, tmp_path, make_args, fragments):
    (tmp_path / "junk.onnx").write_bytes(b"\x00\x01 definitely not protobuf \xff" * 10)
    result = invoke("run", *make_args(onnx_file, tmp_path), "--out", str(tmp_path / "r"))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_preset_option_selects_the_llm_shape(tmp_path):
    result = invoke("run", "-w", "llm", "--preset", "tiny", "-b", "torch", "--iterations", "2", "--warmup", "0",
                    "--launcher", "inline", "--out", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)["records"]
    assert record["spec"]["params"]["preset"] == "tiny"
    bad = invoke("run", "-w", "llm", "--preset", "gpt-9", "--out", str(tmp_path))
    assert bad.exit_code == 2 and "preset='gpt-9' is not one of" in bad.stderr
