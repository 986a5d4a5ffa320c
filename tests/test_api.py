"""The Python API mirrors the CLI."""

from __future__ import annotations

import pytest

from harness.contract.errors import UserError
from harness.engine.timing import Stopping
import harness


def test_run_returns_a_run_folder_that_loads(test_plugins, tmp_path):
    run_dir = harness.run(backends=["null"], workloads=["noop"], batch_sizes=[1, 2],
                          stopping=Stopping(warmup=0).with_fixed_iterations(8), launcher="inline", out=tmp_path)
    frame = harness.results.load(run_dir)
    assert list(frame.batch_size) == [1, 2]
    assert (frame["count"] == 8).all() and (frame.valid == True).all()  # noqa: E712


def test_run_from_config_and_resume(test_plugins, tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text('[sweep]\nbackends = ["null"]\nworkloads = ["noop"]\nbatch_sizes = [1, 2, 3]\n'
                      "[stopping]\niterations = 5\n")
    run_dir = harness.run(config=config, launcher="inline", out=tmp_path / "results")
    assert len(harness.results.load(run_dir)) == 3
    record = next((run_dir / "records").glob("*.json"))
    record.unlink()
    assert harness.resume(run_dir) == run_dir
    assert len(harness.results.load(run_dir)) == 3


def test_bad_input_raises_user_error_before_running(tmp_path):
    with pytest.raises(UserError, match="unknown backend"):
        harness.run(backends=["tpu"], out=tmp_path)
    assert not list(tmp_path.iterdir())


def test_the_api_takes_what_the_cli_takes_through_the_same_path(test_plugins, tmp_path):
    """Backend options, a plugin scenario's settings and the executor, as ``bakeoff run`` has them."""
    run_dir = harness.run(backends=["null"], workloads=["noop"], scenarios=["burst"],
                          scenario_options={"burst": {"size": 2, "bursts": 1}},
                          stopping=Stopping(warmup=0), launcher="inline", out=tmp_path)
    (record,) = harness.results.load_records(run_dir)
    assert record["spec"]["scenario_options"] == {"size": 2, "bursts": 1}
    assert len(record["measurement"]["latencies_ns"]) == 2
    manifest = harness.results.store.read_manifest(run_dir)
    assert manifest["settings"]["executor"] == "local" and manifest["settings"]["scenario_options"]
    with pytest.raises(UserError, match="backend option null.graph: unknown option"):
        harness.run(backends=["null"], workloads=["noop"], backend_options={"null": {"graph": "compile"}},
                    out=tmp_path / "other")
    with pytest.raises(UserError, match="executor 'mars': allowed: local, ray"):
        harness.run(backends=["null"], workloads=["noop"], executor="mars", out=tmp_path / "other")
    with pytest.raises(UserError, match="need --executor ray"):
        harness.run(backends=["null"], workloads=["noop"], ray_address="head:6379", out=tmp_path / "other")
    assert not (tmp_path / "other").exists()
