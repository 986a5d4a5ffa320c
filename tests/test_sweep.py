"""Planning a sweep: defaults, device filters, parameter routing, validation."""

from __future__ import annotations

import pytest

from harness.contract.errors import UserError
from harness.engine.plugins import Registry
from harness.engine.scenarios import ServerSettings
from harness.engine.timing import Stopping
from harness.orchestration.sweep import SweepRequest, parse_param_assignments, plan


def test_default_plan_covers_every_available_backend_and_workload():
    registry = Registry()
    the_plan = plan(SweepRequest(threads=2), registry)
    targets = {(s.backend, s.device) for s in the_plan.specs}
    assert {("torch", "cpu"), ("onnxruntime", "CPUExecutionProvider"), ("openvino", "CPU")} <= targets
    defaults = {name for name in registry.workload_names() if registry.workload_class(name).default_sweep}
    assert {s.workload for s in the_plan.specs} == defaults
    assert "onnx-model" not in defaults  # needs a model file: never in a default sweep
    assert all(s.threads == 2 for s in the_plan.specs)


def test_matrix_expands_dtypes_and_batch_sizes(test_plugins):
    the_plan = plan(SweepRequest(backends=("null",), workloads=("noop",), dtypes=("float32", "float16"),
                                 batch_sizes=(1, 8, 32)))
    assert len(the_plan.specs) == 6
    assert len({s.key() for s in the_plan.specs}) == 6


def test_broken_and_unavailable_plugins_are_skipped_by_default(test_plugins):
    the_plan = plan(SweepRequest(workloads=("noop",)))
    backends = {s.backend for s in the_plan.specs}
    assert "null" in backends and "torch" in backends
    assert not backends & {"broken", "absent", "probe-raises", "not-a-backend"}
    assert any("broken-workload" in n for n in plan(SweepRequest(backends=("null",))).notes)


def test_params_route_to_the_workloads_that_declare_them():
    the_plan = plan(SweepRequest(backends=("torch",), params=(("size", "64"), ("mlp.hidden", "32"))))
    params = {s.workload: s.params_dict for s in the_plan.specs}
    assert params["gemm"] == {"size": 64}
    assert params["mlp"] == {"hidden": 32, "expansion": 4, "layers": 2}


@pytest.mark.parametrize("request_kwargs, message", [
    ({"params": (("gemm.sise", "1"),)}, "unknown parameter 'sise'"),
    ({"workloads": ("gemm",), "params": (("mlp.hidden", "1"),)}, "workload 'mlp' is not in this run"),
    ({"dtypes": ("float64",)}, "unknown dtype 'float64'"),
    ({"stopping": Stopping(warmup=-1)}, "warmup -1 must be >= 0"),
    ({"stopping": Stopping(target_ci=1.5)}, "target_ci 1.5 must be between 0 and 1"),
    ({"stopping": Stopping(min_duration_s=5, max_duration_s=2)}, "max_duration_s 2 must be >= min_duration_s 5"),
    ({"scenarios": ("server",)}, "needs a target QPS"),
    ({"scenarios": ("server",), "server": ServerSettings(target_qps=5, latency_slo_s=0)}, "latency_slo 0"),
    ({"scenarios": ("no-such-scenario",)}, "unknown scenario 'no-such-scenario'"),
    ({"memory_limit_bytes": 0}, "memory limit 0"),
    ({"timeout_s": 0}, "timeout 0"),
    ({"devices": ("cuda:9",)}, "unknown device 'cuda:9'"),
])
def test_bad_requests_fail_before_anything_runs(request_kwargs, message):
    with pytest.raises(UserError, match=message):
        plan(SweepRequest(**request_kwargs))


def test_device_filter_selects_devices():
    the_plan = plan(SweepRequest(devices=("CPU",), workloads=("gemm",)))
    assert {(s.backend, s.device) for s in the_plan.specs} == {("openvino", "CPU")}


def test_parse_param_assignments():
    assert parse_param_assignments(["size=1", " mlp.hidden = 2 "]) == (("size", "1"), ("mlp.hidden", "2"))
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_param_assignments(["=3"])


def test_threads_default_to_every_usable_core(test_plugins):
    from harness.engine.telemetry.environment import default_threads

    [spec] = plan(SweepRequest(backends=("null",), workloads=("noop",))).specs
    assert spec.threads == default_threads() >= 1


def test_offline_defaults_to_a_batch_size_sweep(test_plugins):
    the_plan = plan(SweepRequest(backends=("null",), workloads=("noop",), scenarios=("single-stream", "offline")))
    sizes = {(s.scenario, s.batch_size) for s in the_plan.specs}
    assert sizes == {("single-stream", 1), ("offline", 1), ("offline", 8), ("offline", 32)}


def test_server_settings_reach_only_server_specs(test_plugins):
    server = ServerSettings(target_qps=50)
    the_plan = plan(SweepRequest(backends=("null",), workloads=("noop",), scenarios=("single-stream", "server"),
                                 server=server))
    by_scenario = {s.scenario: s for s in the_plan.specs}
    assert by_scenario["server"].server == server and by_scenario["single-stream"].server is None


def test_a_repeated_or_listed_parameter_sweeps(tmp_path):
    from harness.engine.plugins import Registry
    from harness.orchestration.config import load_config
    from harness.orchestration.sweep import SweepRequest, parse_param_assignments, plan

    registry = Registry()
    pairs = parse_param_assignments(["size=64", "size=128", "size=64"])
    assert pairs == (("size", ["64", "128", "64"]),)
    request = SweepRequest(backends=("torch",), devices=("cpu",), workloads=("gemm", "mlp"),
                           params=pairs + (("mlp.layers", [1, 2]),))
    specs = plan(request, registry).specs
    assert sorted(s.params_dict["size"] for s in specs if s.workload == "gemm") == [64, 128]  # 64 once
    assert sorted(s.params_dict["layers"] for s in specs if s.workload == "mlp") == [1, 2]

    config = tmp_path / "sweep.toml"
    config.write_text('[sweep]\nbackends = ["torch"]\ndevices = ["cpu"]\nworkloads = ["gemm"]\n'
                      '[workload.gemm]\nsize = [32, 48]\n')
    assert sorted(s.params_dict["size"] for s in plan(load_config(config), registry).specs) == [32, 48]


def test_a_cli_parameter_replaces_the_configs_value(tmp_path):
    from click.testing import CliRunner

    from harness.presentation.cli import cli

    config = tmp_path / "sweep.toml"
    config.write_text('[sweep]\nbackends = ["torch"]\ndevices = ["cpu"]\nworkloads = ["gemm"]\n'
                      '[workload.gemm]\nsize = 32\n')
    result = CliRunner().invoke(cli, ["run", "--config", str(config), "-p", "gemm.size=16", "-p", "gemm.size=24",
                                      "--iterations", "2", "--launcher", "inline", "--out", str(tmp_path / "r"),
                                      "--json", "-q"])
    assert result.exit_code == 0, result.output
    import json

    sizes = sorted(r["spec"]["params"]["size"] for r in json.loads(result.output)["records"])
    assert sizes == [16, 24]


def test_one_sweep_loop_serves_a_batch_launcher_like_the_fleet(test_plugins, tmp_path):
    """The Ray executor is a BatchLauncher driven by the same loop as the local launchers: it is
    handed only what the backend does not refuse up front, and every record is written."""
    from harness.orchestration.launchers import BatchLauncher, InlineLauncher
    from harness.orchestration.sweep import run_sweep
    from harness.results.store import RunStore, read_manifest

    class FakeFleet:
        name = "fake-fleet"

        def __init__(self):
            self.given = []

        def launch_all(self, specs, on_outcome, *, keep_alive=()):
            self.given = [s.workload for s in specs]
            inline = InlineLauncher(Registry())
            for spec in reversed(specs):  # completion order need not be plan order
                on_outcome(spec, inline.launch(spec))

    fleet = FakeFleet()
    assert isinstance(fleet, BatchLauncher)
    specs = plan(SweepRequest(backends=("picky",), workloads=("gemm", "llm"), params=(("gemm.size", 16),),
                              stopping=Stopping(warmup=0).with_fixed_iterations(3))).specs
    store = RunStore.create(tmp_path, settings={}, plan=specs)
    records = run_sweep(specs, fleet, store)
    assert fleet.given == ["gemm"]  # llm was declared unsupported: never sent
    assert {r["spec"]["workload"]: r["status"] for r in records} == {"gemm": "ok", "llm": "unsupported"}
    assert read_manifest(store.path)["status"] == "complete"


# -- load points: one benchmark per --concurrency / --qps value (issue 18, item 7) -------------

def _points_of(run_dir):
    from harness.results.store import read_records

    return sorted((r["spec"]["scenario"], r["spec"]["server"]["concurrency"] if r["spec"]["scenario"] == "concurrent"
                   else None) for r in read_records(run_dir))


@pytest.mark.slow
def test_repeated_concurrency_gives_one_benchmark_per_point_from_cli_toml_and_api(tmp_path, test_plugins):
    import json

    from click.testing import CliRunner

    import harness
    from harness.engine.scenarios import ServerSettings
    from harness.orchestration.config import load_config
    from harness.orchestration.sweep import plan
    from harness.presentation.cli import cli

    common = ["-b", "null", "-w", "noop", "--launcher", "inline", "--iterations", "3", "--min-queries", "10",
              "--json", "-q"]
    result = CliRunner().invoke(cli, ["run", *common, "-s", "concurrent", "-s", "server", "--concurrency", "1",
                                      "--concurrency", "2", "--concurrency", "4", "--qps", "50",
                                      "--out", str(tmp_path / "cli")], prog_name="bakeoff")
    assert result.exit_code == 0, result.output
    by_cli = _points_of(json.loads(result.output)["run_dir"])
    # The concurrent scenario is told apart by its concurrency; the server scenario is not, so it runs once.
    assert by_cli == [("concurrent", 1), ("concurrent", 2), ("concurrent", 4), ("server", None)]

    config = tmp_path / "points.toml"
    config.write_text('schema_version = 1\n[sweep]\nbackends = ["null"]\nworkloads = ["noop"]\n'
                      'scenarios = ["concurrent", "server"]\n[server]\nconcurrency = [1, 2, 4]\ntarget_qps = 50.0\n')
    request = load_config(config)
    assert [point.concurrency for point in request.server_points] == [1, 2, 4]
    specs = plan(request).specs
    assert sorted((s.scenario, s.server.concurrency if s.scenario == "concurrent" else None) for s in specs) == by_cli

    api_dir = harness.run(["null"], ["noop"], scenarios=["concurrent"], launcher="inline",
                          server=[ServerSettings(concurrency=c, target_qps=50.0, min_queries=10) for c in (1, 8)],
                          out=tmp_path / "api")
    assert _points_of(api_dir) == [("concurrent", 1), ("concurrent", 8)]


def test_a_concurrency_list_in_a_config_is_checked_item_by_item(tmp_path):
    from harness.contract.errors import UserError
    from harness.orchestration.config import load_config

    config = tmp_path / "bad.toml"
    config.write_text('schema_version = 1\n[server]\nconcurrency = [1, 0]\n')
    with pytest.raises(UserError, match=r"\[server\] concurrency = 0: must be >= 1"):
        load_config(config)
    config.write_text('schema_version = 1\n[server]\nconcurrency = []\n')
    with pytest.raises(UserError, match="must be an integer or a list of integers"):
        load_config(config)
