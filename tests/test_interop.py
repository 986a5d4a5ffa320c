"""pytest-benchmark interop: a bakeoff run exported as pytest-benchmark JSON is read by the real
`pytest-benchmark compare`; and a user's own pytest-benchmark test over a bakeoff backend."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.presentation.cli import cli
from harness.presentation.interop import benchmark_stats
from harness.testing import one_step, prepared


def test_stats_follow_pytest_benchmark_definitions():
    from pytest_benchmark.stats import Stats

    samples = [0.010, 0.011, 0.012, 0.011, 0.013, 0.050, 0.010, 0.011, 0.012]
    reference = Stats()
    for value in samples:
        reference.update(value)
    ours = benchmark_stats(samples)
    for field in ("min", "max", "mean", "stddev", "median", "q1", "q3", "iqr", "iqr_outliers", "stddev_outliers",
                  "ld15iqr", "hd15iqr", "ops", "total", "rounds"):
        assert ours[field] == pytest.approx(getattr(reference, field)), field
    assert ours["data"] == samples


@pytest.mark.slow
def test_exported_runs_round_trip_through_pytest_benchmark_compare(test_plugins, tmp_path):
    runner = CliRunner()
    exports = []
    for index in range(2):
        out = tmp_path / f"results{index}"
        run = runner.invoke(cli, ["run", "-b", "null", "-w", "noop", "-p", f"service_us={100 + 50 * index}",
                                  "--iterations", "30", "--launcher", "inline", "--out", str(out), "--json", "-q"])
        assert run.exit_code == 0, run.output
        run_dir = json.loads(run.output)["run_dir"]
        target = tmp_path / f"{index:04d}_run.json"
        exported = runner.invoke(cli, ["export", run_dir, "--format", "pytest-benchmark", "-o", str(target)])
        assert exported.exit_code == 0, exported.output
        exports.append(target)
    document = json.loads(exports[0].read_text())
    (bench,) = document["benchmarks"]
    assert bench["stats"]["rounds"] == 30 and bench["name"].startswith("null/fake::noop[")
    assert statistics.median(bench["stats"]["data"]) == pytest.approx(bench["stats"]["median"])
    assert document["machine_info"]["bakeoff"]["run_id"]

    tool = Path(sys.executable).parent / "pytest-benchmark"
    result = subprocess.run([str(tool), "compare", *map(str, exports), "--columns", "min,median,max,rounds"],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "400"})
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("null/fake::noop[")]
    assert len(rows) == 2 and "0000_run)" in rows[0] and "0001_run)" in rows[1]
    assert rows[0].split()[-1] == "30"  # rounds, read back from the export


def test_export_pytest_benchmark_to_stdout_and_errors(test_plugins, tmp_path):
    runner = CliRunner()
    run = runner.invoke(cli, ["run", "-b", "null", "-w", "noop", "--iterations", "5", "--launcher", "inline",
                              "--out", str(tmp_path), "--json", "-q"])
    run_dir = json.loads(run.output)["run_dir"]
    printed = runner.invoke(cli, ["export", run_dir, "--format", "pytest-benchmark"])
    assert printed.exit_code == 0 and json.loads(printed.output)["benchmarks"]
    missing = runner.invoke(cli, ["export", str(tmp_path / "nope"), "--format", "pytest-benchmark"])
    assert missing.exit_code == 2 and missing.output.count("\n") == 1


@pytest.fixture(scope="module")
def gemm_on_torch():
    """The documented way to benchmark a bakeoff backend from your own pytest suite."""
    with prepared("torch", "gemm", "cpu", size=64, threads=1) as ready:
        yield ready


def test_a_users_own_pytest_benchmark_over_a_bakeoff_backend(benchmark, gemm_on_torch):
    benchmark.pedantic(one_step(gemm_on_torch), rounds=20, iterations=1)
    assert benchmark.stats.stats.rounds == 20 and benchmark.stats.stats.median > 0
    assert gemm_on_torch.outputs()[0].shape == (1, 64, 64)
