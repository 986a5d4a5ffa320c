"""Fleet runs on Ray (harness/orchestration/fleet.py): requirement mapping and scheduling checks as pure
functions, then a real three-node Ray cluster on loopback driven through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.contract.errors import UserError
from harness.contract.interface import DeviceInfo
from harness.engine.plugins import BackendStatus, Registry
from harness.engine.spec import BenchmarkSpec
from harness.orchestration.fleet import Requirements, cluster_rows, parse_resource_selectors, requirements_for, unschedulable_reason
from harness.presentation.cli import cli

REPO = Path(__file__).resolve().parent.parent
PLUGINS = REPO / "tests" / "plugins"


def spec(backend="torch", device="cpu", threads=4):
    return BenchmarkSpec.create(backend=backend, device=device, workload="gemm", threads=threads)


# -- requirements, in one documented place -----------------------------------------

def test_builtin_backends_declare_their_accelerator_resources():
    registry = Registry()
    torch, ort = registry.backend("torch"), registry.backend("onnxruntime")
    assert requirements_for(spec(device="cuda:0"), torch).ray_options() == {"num_cpus": 1.0, "num_gpus": 1.0}
    assert requirements_for(spec(device="npu:1"), torch).as_resources() == {"CPU": 1.0, "NPU": 1.0}
    assert requirements_for(spec("onnxruntime", "CANNExecutionProvider"), ort).as_resources() == {"CPU": 1, "NPU": 1}
    assert requirements_for(spec("onnxruntime", "CUDAExecutionProvider"), ort).num_gpus == 1
    # CPU benchmarks ask for as many CPUs as they use threads, so two never share cores.
    assert requirements_for(spec(device="cpu", threads=4), torch).as_resources() == {"CPU": 4.0}


def test_user_resources_select_by_backend_or_device_and_plugins_declare_their_own():
    selectors = parse_resource_selectors(["torch/npu:0=ascend910b", "onnxruntime=lab_b:2"])
    torch = Registry().backend("torch")
    assert requirements_for(spec(device="npu:0"), torch, selectors).resources == {"NPU": 1, "ascend910b": 1.0}
    assert "ascend910b" not in requirements_for(spec(device="npu:1"), torch, selectors).resources
    assert requirements_for(spec("onnxruntime", "CPUExecutionProvider", 1), None, selectors).resources == {"lab_b": 2.0}

    class AcmeBackend:
        def ray_requirements(self, device):
            return {"resources": {"acme_x1": 1}, "accelerator_type": "X1"}

    wanted = requirements_for(spec("acme", "acme:0"), AcmeBackend()).as_resources()
    assert wanted == {"CPU": 1.0, "acme_x1": 1, "accelerator_type:X1": 0.001}
    for bad in ("torch", "=lab", "torch=", "torch=lab:zero", "torch=lab:-1"):
        with pytest.raises(UserError, match="BACKEND\\[/DEVICE\\]=RESOURCE"):
            parse_resource_selectors([bad])


def test_unschedulable_names_what_was_asked_and_what_nodes_offer():
    nodes = [{"Alive": True, "Resources": {"CPU": 8.0, "GPU": 1.0, "node:10.0.0.1": 1.0}},
             {"Alive": False, "Resources": {"CPU": 8.0, "NPU": 8.0}}]
    assert unschedulable_reason(Requirements(num_cpus=1, num_gpus=1), nodes) is None
    reason = unschedulable_reason(Requirements(num_cpus=1, resources={"NPU": 1}), nodes)
    assert reason.startswith("unschedulable: no node offers CPU=1, NPU=1") and "GPU=1" in reason
    assert "NPU=8" not in reason  # the dead node does not count


def test_the_cluster_listing_is_the_union_of_the_nodes():
    gpu_node = [BackendStatus("torch", "cuda:0", True, "2.9", None,
                              DeviceInfo("torch", "cuda:0", model="NVIDIA H200", memory_bytes=1 << 30), "p").to_dict()]
    cpu_node = [BackendStatus("torch", "cuda:0", False, "2.9", "no device visible", None, "p").to_dict(),
                BackendStatus("torch", "cpu", True, "2.9", None, DeviceInfo("torch", "cpu"), "p").to_dict()]
    rows = cluster_rows([{"backends": cpu_node}, {"backends": gpu_node}])
    by_device = {r.device: r for r in rows["torch"]}
    assert by_device["cuda:0"].available and by_device["cuda:0"].info.model == "NVIDIA H200"
    assert by_device["cpu"].available


def test_ray_options_without_the_ray_executor_are_an_error():
    result = CliRunner().invoke(cli, ["run", "-b", "torch", "--ray-address", "x:1"])
    assert result.exit_code == 2 and "need --executor ray" in result.output


# -- a real cluster on loopback -------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    """A head and two workers on 127.0.0.1, advertising the custom resources lab_a and lab_b."""
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    saved = {k: os.environ.get(k) for k in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "PYTHONPATH")}
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every Ray address is loopback
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGINS), saved["PYTHONPATH"]]))
    loopback = {"node_ip_address": "127.0.0.1"}
    ray_cluster = Cluster(initialize_head=True,
                          head_node_args={"num_cpus": 1, "include_dashboard": False, **loopback})
    lab_a = ray_cluster.add_node(num_cpus=1, resources={"lab_a": 1}, **loopback)
    lab_b = ray_cluster.add_node(num_cpus=1, resources={"lab_b": 1}, **loopback)
    ray_cluster.wait_for_nodes()
    try:
        yield {"address": ray_cluster.address, "lab_a": lab_a.node_id, "lab_b": lab_b.node_id}
    finally:
        ray_cluster.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def bakeoff(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.presentation.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


@pytest.mark.slow
def test_benchmarks_land_on_the_node_with_their_resource_and_load_as_one_frame(cluster, tmp_path):
    from harness.results.frame import load
    from harness.results.store import read_records

    result = bakeoff("run", "--executor", "ray", "--ray-address", cluster["address"], "-b", "null", "-b", "parrot",
                     "-w", "noop", "-w", "echo", "--threads", "1", "--iterations", "20",
                     "--ray-resource", "null=lab_a", "--ray-resource", "parrot=lab_b", "--out", str(tmp_path),
                     "--json", "-q")
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads(result.stdout)
    records = run["records"]
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)
    for record in records:
        expected = cluster["lab_a"] if record["spec"]["backend"] == "null" else cluster["lab_b"]
        assert record["node"]["ray_node_id"] == expected
        assert record["host"] == record["node"]["hostname"]
    frame = load(run["run_dir"])
    assert len(frame) == 4 and set(frame["node_id"]) == {cluster["lab_a"], cluster["lab_b"]}

    # --resume sends only the missing benchmark, with the run's stored executor settings.
    missing = next(Path(run["run_dir"], "records").glob("parrot-*echo*.json"))
    missing.unlink()
    resumed = bakeoff("run", "--resume", run["run_id"], "--out", str(tmp_path), "--json", "-q")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    again = {r["key"]: r for r in read_records(Path(run["run_dir"]))}
    assert len(again) == 4 and again[missing.stem]["node"]["ray_node_id"] == cluster["lab_b"]


@pytest.mark.slow
def test_a_killed_worker_fails_its_record_and_an_unschedulable_one_is_reported(cluster, tmp_path):
    started = time.monotonic()
    result = bakeoff("run", "--executor", "ray", "--ray-address", cluster["address"], "-b", "ray-worker-killer",
                     "-b", "null", "-w", "noop", "--threads", "1", "--iterations", "50", "--ray-retries", "0",
                     "--ray-resource", "null=nowhere:1", "--out", str(tmp_path), "--json", "-q")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads(result.stdout)
    by_backend = {r["spec"]["backend"]: r for r in run["records"]}
    killed = by_backend["ray-worker-killer"]
    assert killed["status"] == "failed" and killed["failure"]["cause"] == "lost"
    assert "Ray task failed after 0 retries" in killed["failure"]["message"]
    stuck = by_backend["null"]
    assert stuck["status"] == "unavailable" and "unschedulable: no node offers CPU=1, nowhere=1" in stuck["reason"]
    manifest = json.loads(Path(run["run_dir"], "run.json").read_text())
    assert manifest["status"] == "complete"
    assert elapsed < 120, f"the sweep took {elapsed:.0f} s"


def _processes_of(marker: str) -> list:
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            if process.info["status"] != psutil.STATUS_ZOMBIE and marker in " ".join(process.info["cmdline"] or []):
                found.append(process)
        except psutil.Error:
            continue
    return found


@pytest.mark.slow
def _alive(process) -> bool:
    """Running and not a zombie; a process that ends between the two questions is not alive
    (psutil raises for a pid that has gone, which is the event these tests wait for)."""
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _children(process) -> list:
    import psutil

    try:
        return process.children()
    except psutil.Error:
        return []


def test_a_fleet_worker_dies_when_its_driver_disappears(cluster, tmp_path):
    """kill -9 of a `bakeoff run --executor ray` driver: Ray ends the job's task worker, and the
    benchmark worker under it (and the helper it started) dies with it."""
    driver = subprocess.Popen([sys.executable, "-m", "harness.presentation.cli", "run", "--executor", "ray", "--ray-address",
                               cluster["address"], "-b", "spawning", "-w", "noop", "--threads", "1",
                               "--iterations", "100000", "--ray-resource", "spawning=lab_a", "--out",
                               str(tmp_path), "-q"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    workers, helpers = [], []
    while not helpers:  # the worker is up and its backend has started its helper
        assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the benchmark worker or its helper never started"
        time.sleep(0.1)
        workers = _processes_of("harness.orchestration.worker")
        helpers = [child for worker in workers for child in _children(worker)]
    driver.kill()
    driver.wait(timeout=30)
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in workers + helpers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [p.pid for p in workers + helpers if _alive(p)]
    assert not survivors, f"processes of the dead driver's run still alive: {survivors}"
