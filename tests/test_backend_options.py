"""Backend options (graph capture, provider options, IOBinding): validation, identity, sweeps,
and real runs of the paths this CPU machine can execute."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from backends.onnxruntime_backend import (
    accepted_provider_options,
    cann_precision_key,
    check_options_took_effect,
    check_provider_options,
)
from harness.contract import options
from harness.contract.errors import UserError
from harness.engine.plugins import Registry
from harness.engine.runner import execute
from harness.engine.spec import BenchmarkSpec
from harness.orchestration.config import load_config
from harness.orchestration.sweep import SweepRequest, plan
from harness.presentation.cli import cli


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), prog_name="bakeoff")


# -- the options module --------------------------------------------------------

DECLARED = {
    "graph": options.Option("str", "eager", ("eager", "compile")),
    "table": options.Option("table", {}),
    "flag": options.Option("bool", None),
}


def test_validate_drops_defaults_and_names_what_is_wrong():
    assert options.validate("b", DECLARED, {"graph": "eager", "table": {}}) == {}
    assert options.validate("b", DECLARED, {"graph": "compile", "table": {"z": 1, "a": 2}}) == {
        "graph": "compile", "table": {"a": 2, "z": 1}}
    with pytest.raises(UserError, match=r"b\.nope: unknown option \(options of b: flag, graph, table\)"):
        options.validate("b", DECLARED, {"nope": 1})
    with pytest.raises(UserError, match=r"b\.graph = 'fast': allowed: eager, compile"):
        options.validate("b", DECLARED, {"graph": "fast"})
    with pytest.raises(UserError, match=r"b\.flag = 'yes': must be true or false"):
        options.validate("b", DECLARED, {"flag": "yes"})


def test_cli_assignments_parse_toml_values_nest_tables_and_sweep_repeats():
    parsed = options.parse_assignments([
        "torch.graph=eager", "torch.graph=compile",
        "onnxruntime.provider_options.device_id=1", "onnxruntime.provider_options.use_tf32=false",
        "onnxruntime.io_binding=true",
    ])
    assert parsed == {"torch": {"graph": ["eager", "compile"]},
                      "onnxruntime": {"provider_options": {"device_id": 1, "use_tf32": False}, "io_binding": True}}
    assert options.variants(parsed["torch"]) == [{"graph": "eager"}, {"graph": "compile"}]
    assert options.variants(parsed["onnxruntime"]) == [parsed["onnxruntime"]]  # tables never expand
    with pytest.raises(UserError, match="expected BACKEND.KEY=VALUE"):
        options.parse_assignments(["graph=compile"])


def test_options_are_identity_and_default_options_keep_old_keys():
    plain = BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm")
    compiled = BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm", options={"graph": "compile"})
    assert "options" not in plain.identity()
    assert compiled.identity()["options"] == {"graph": "compile"}
    assert plain.key() != compiled.key()
    nested = BenchmarkSpec.create(backend="onnxruntime", device="x", workload="gemm",
                                  options={"provider_options": {"device_id": 0}})
    hash(nested)  # frozen specs stay hashable with table options
    assert BenchmarkSpec.from_dict(json.loads(json.dumps(nested.to_dict()))) == nested
    assert options.backend_label(nested.to_dict()) == "onnxruntime[provider_options.device_id=0]"
    assert options.backend_label(plain.to_dict()) == "torch"


# -- planning ------------------------------------------------------------------

def test_a_list_option_sweeps_and_equal_sets_run_once():
    request = SweepRequest(backends=("torch",), devices=("cpu",), workloads=("gemm",),
                           backend_options={"torch": {"graph": ["eager", "compile", "eager"]}})
    specs = plan(request, Registry()).specs
    assert [s.options_dict for s in specs] == [{}, {"graph": "compile"}]


@pytest.mark.parametrize("backend_options, message", [
    ({"torch": {"graph": "fast"}}, "torch.graph = 'fast': allowed: eager, compile, device-graph"),
    ({"torch": {"compile_mode": "max-autotune"}}, "compile_mode=max-autotune needs graph=compile"),
    ({"onnxruntime": {"provider_options": {"device_id": 0}}}, "CPUExecutionProvider takes no provider options"),
    ({"onnxruntime": {"session_config": {"session.intra_op.allow_spinning": 0}}}, "session config values are strings"),
    ({"openvino": {"x": 1}}, "openvino.x: unknown option (options of openvino: none)"),
])
def test_bad_options_are_user_errors_before_anything_runs(backend_options, message):
    request = SweepRequest(backends=("torch", "onnxruntime", "openvino"), workloads=("gemm",),
                           backend_options=backend_options)
    with pytest.raises(UserError) as error:
        plan(request, Registry())
    assert message in str(error.value)


def test_an_option_for_a_backend_not_in_the_run_is_an_error():
    with pytest.raises(UserError, match="backend 'onnxruntime' is not in this run"):
        plan(SweepRequest(backends=("torch",), workloads=("gemm",),
                          backend_options={"onnxruntime": {"io_binding": True}}), Registry())


def test_cli_bad_option_is_one_line_exit_2():
    result = invoke("run", "-b", "torch", "-w", "gemm", "-O", "torch.graph=warp")
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "torch.graph = 'warp'" in result.output


def test_config_backend_tables_sweep(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text('[sweep]\nbackends = ["torch"]\ndevices = ["cpu"]\nworkloads = ["gemm"]\n'
                      '[backend.torch]\ngraph = ["eager", "compile"]\n')
    request = load_config(config)
    assert request.backend_options == {"torch": {"graph": ["eager", "compile"]}}
    assert len(plan(request, Registry()).specs) == 2
    config.write_text('[backend]\ntorch = 3\n')
    with pytest.raises(UserError, match=r"\[backend\] must hold tables"):
        load_config(config)


def test_backends_options_listing():
    result = invoke("backends", "--options", "--json")
    rows = {(r["backend"], r["option"]): r for r in json.loads(result.output)}
    assert rows[("torch", "graph")]["choices"] == ["eager", "compile", "device-graph"]
    assert ("onnxruntime", "provider_options") in rows and ("onnxruntime", "io_binding") in rows


# -- ONNX Runtime provider options per installed version -------------------------

def test_provider_option_keys_are_checked_per_provider_and_version():
    check_provider_options("CUDAExecutionProvider", "1.32.0", {"device_id": "0", "enable_cuda_graph": "1"})
    with pytest.raises(ValueError, match=r"provider_options.cuda_mem_limit: not an option of CUDAExecutionProvider"):
        check_provider_options("CUDAExecutionProvider", "1.32.0", {"cuda_mem_limit": "1"})
    # The CANN key was renamed after 1.24: the released wheel reads precision_mode.
    assert cann_precision_key("1.24.4") == "precision_mode"
    assert cann_precision_key("1.25.0") == "precision_mode_v2"
    check_provider_options("CANNExecutionProvider", "1.24.4", {"precision_mode": "force_fp16"})
    with pytest.raises(ValueError, match="reads 'precision_mode_v2'"):
        check_provider_options("CANNExecutionProvider", "1.26.0", {"precision_mode": "force_fp16"})
    with pytest.raises(ValueError, match="not an option of CANNExecutionProvider"):
        check_provider_options("CANNExecutionProvider", "1.24.4", {"do_copy_in_default_stream": "1"})
    assert accepted_provider_options("SomeFutureExecutionProvider", "9.0") is None  # unknown: not checked


def test_provider_options_that_did_not_take_effect_fail_the_benchmark():
    check_options_took_effect("CUDAExecutionProvider", {"device_id": "0"}, {"device_id": "0", "use_tf32": "1"})
    check_options_took_effect("CPUExecutionProvider", {}, {})
    with pytest.raises(RuntimeError, match="ignored provider option"):
        check_options_took_effect("CUDAExecutionProvider", {"made_up": "1"}, {"device_id": "0"})


# -- device-graph capture logic, with a fake device module ---------------------------

class FakeDeviceModule:
    """Records the capture protocol: warm-up on a side stream, then capture, then replay."""

    def __init__(self):
        self.events: list[str] = []
        self.current = "main"
        module = self

        class Stream:
            def __init__(self, device):
                self.name = "side"

            def wait_stream(self, other):
                module.events.append(f"{self.name} waits")

        class CUDAGraph:
            def replay(self):
                module.events.append("replay")

        class _StreamContext:
            def __init__(self, stream):
                self.stream = stream

            def __enter__(self):
                module.current = self.stream.name

            def __exit__(self, *exc):
                module.current = "main"

        class _GraphContext:
            def __init__(self, graph):
                pass

            def __enter__(self):
                module.current = "capture"

            def __exit__(self, *exc):
                module.current = "main"

        self.Stream, self.CUDAGraph = Stream, CUDAGraph
        self.stream, self.graph = _StreamContext, _GraphContext
        self.main = SimpleNamespace(name="main", wait_stream=lambda other: self.events.append("main waits"))

    def current_stream(self, device):
        return self.main

    def synchronize(self, device):
        self.events.append("synchronize")


def test_device_graph_warms_up_on_a_side_stream_captures_once_and_replays():
    import torch

    from backends.torch_backend import TorchGraphPrepared

    fake = FakeDeviceModule()

    class Model(torch.nn.Module):
        def forward(self, x):
            fake.events.append(f"forward on {fake.current}")
            return x * 2

    prepared = TorchGraphPrepared(torch, Model(), (torch.ones(2),), SimpleNamespace(type="cuda"), fake)
    assert fake.events == ["side waits", *["forward on side"] * 3, "main waits", "forward on capture",
                           "synchronize"]
    fake.events.clear()
    prepared.step()
    assert fake.events == ["replay"]  # the model is never called eagerly again
    assert prepared.capture_details["graph"] == "torch.cuda.CUDAGraph"
    assert prepared.outputs()[0].tolist() == [2.0, 2.0]


# -- real runs on this machine ---------------------------------------------------------

@pytest.mark.slow
def test_torch_compile_runs_passes_parity_and_records_its_compiler():
    spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="mlp", params={"hidden": 64, "layers": 2},
                                options={"graph": "compile"}, iterations=5)
    outcome = execute(spec, Registry())
    assert outcome.status == "ok", outcome.failure
    assert outcome.parity["passed"]
    assert outcome.details["mode"] == "compile" and outcome.details["compiler"] == "inductor"
    assert outcome.details["compile_s"] > 0


@pytest.mark.slow
def test_device_graph_on_the_cpu_is_a_skip_with_a_reason():
    spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm", params={"size": 16},
                                options={"graph": "device-graph"}, iterations=3)
    outcome = execute(spec, Registry())
    assert outcome.status == "unsupported" and "cpu has none" in outcome.reason


@pytest.mark.slow
@pytest.mark.parametrize("workload, params", [("gemm", {"size": 64}), ("llm", {"preset": "tiny", "new_tokens": 4})])
def test_onnxruntime_io_binding_path_runs_with_parity(workload, params):
    """The CPU provider exercises the same IOBinding code the device providers use."""
    spec = BenchmarkSpec.create(backend="onnxruntime", device="CPUExecutionProvider", workload=workload,
                                params=params, options={"io_binding": True}, iterations=3)
    outcome = execute(spec, Registry())
    assert outcome.status == "ok", outcome.failure
    assert outcome.parity["passed"]
    assert outcome.details["io_binding"] == "cpu:0"
