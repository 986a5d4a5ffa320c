"""The Python API mirrors the CLI."""

from __future__ import annotations

import pytest

import harness
from harness.errors import UserError
from harness.timing import Stopping


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
