"""compare on real runs (a planted 20% regression, and two identical configurations); export round trips.

The runs go through the real CLI, runner and worker on the ``planted`` fake backend,
whose device timer reports seeded step times: what compare sees does not depend on
the machine being quiet (a busy-waiting fake timed on the host clock once gave
ratio 1.6 under load).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from harness.presentation.cli import cli
from harness.results.frame import load, read_export

SWEEP = ["run", "-b", "planted", "-w", "noop", "-p", "service_us=2000", "--batch-size", "1", "--batch-size", "2",
         "--iterations", "60", "--warmup", "3", "--launcher", "inline", "--json"]


def real_run(tmp_path, monkeypatch, name, slowdown="1", seed="1"):
    monkeypatch.setenv("BAKEOFF_TEST_SLOWDOWN", slowdown)
    monkeypatch.setenv("BAKEOFF_TEST_SEED", seed)  # each run draws its own noise
    result = CliRunner().invoke(cli, [*SWEEP, "--out", str(tmp_path / name)], prog_name="bakeoff")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["run_dir"]


def invoke(*args):
    return CliRunner().invoke(cli, list(args), prog_name="bakeoff")


def test_compare_finds_a_planted_20_percent_regression(tmp_path, monkeypatch, test_plugins):
    base = real_run(tmp_path, monkeypatch, "base")
    slower = real_run(tmp_path, monkeypatch, "slower", slowdown="1.2", seed="2")
    result = invoke("compare", base, slower, "--json")
    assert result.exit_code == 0, result.output
    [comparison_set] = json.loads(result.stdout)["results"]
    verdicts = [c["verdict"] for c in comparison_set["comparisons"]]
    assert verdicts == ["regressed", "regressed"]
    for c in comparison_set["comparisons"]:
        assert c["ratio"] == pytest.approx(1.2, rel=0.05) and c["p_value"] < 0.001
        assert c["ratio_ci"][0] > 1.1
    gate = invoke("compare", base, slower, "--fail-on-regression")
    assert gate.exit_code == 1 and "significant regression" in gate.stderr
    lenient = invoke("compare", base, slower, "--threshold", "30%", "--fail-on-regression")
    assert lenient.exit_code == 0


def test_compare_finds_nothing_between_two_runs_of_one_configuration(tmp_path, monkeypatch, test_plugins):
    first, second = real_run(tmp_path, monkeypatch, "a", seed="3"), real_run(tmp_path, monkeypatch, "b", seed="4")
    result = invoke("compare", first, second, "--json", "--fail-on-regression")
    assert result.exit_code == 0, result.output
    verdicts = {c["verdict"] for c in json.loads(result.stdout)["results"][0]["comparisons"]}
    assert verdicts <= {"unchanged", "inconclusive"}


def test_compare_lists_one_sided_benchmarks_and_many_runs(tmp_path, monkeypatch, test_plugins):
    base = real_run(tmp_path, monkeypatch, "base")
    monkeypatch.setenv("BAKEOFF_TEST_SLOWDOWN", "1")
    other = invoke("run", "-b", "planted", "-w", "noop", "-p", "service_us=2000", "--batch-size", "4",
                   "--iterations", "20", "--launcher", "inline", "--out", str(tmp_path / "other"), "--json")
    other_dir = json.loads(other.stdout)["run_dir"]
    result = invoke("compare", base, other_dir, base)
    assert result.exit_code == 0, result.output
    assert "only in" in result.stdout and "b4" in result.stdout
    header = next(line for line in result.stdout.splitlines() if "benchmark" in line)
    assert header.count(Path(base).name[:8]) >= 2 and Path(other_dir).name[:8] in header  # one column per run
    assert "x1.000 unchanged" in result.stdout  # base against itself
    assert invoke("compare", base).exit_code == 2
    assert invoke("compare", base, base, "--threshold", "lots").exit_code == 2


def test_export_round_trips_through_csv_and_parquet(tmp_path, monkeypatch, test_plugins):
    run_dir = real_run(tmp_path, monkeypatch, "r")
    frame = load(run_dir)
    for fmt in ("csv", "parquet"):
        target = tmp_path / f"out.{fmt}"
        result = invoke("export", run_dir, "--format", fmt, "-o", str(target))
        assert result.exit_code == 0, result.output
        back = read_export(target)
        assert list(back.columns) == list(frame.columns) and len(back) == len(frame)
        for column in ("run_id", "backend", "batch_size", "median_s", "p99_s", "throughput"):
            pd.testing.assert_series_equal(back[column], frame[column], check_dtype=False, check_names=False)
        assert back.loc[0, "latencies_s"] == pytest.approx(frame.loc[0, "latencies_s"])
    markdown = invoke("export", run_dir, "--format", "markdown")
    assert markdown.exit_code == 0 and "| backend" in markdown.stdout
    assert invoke("export", run_dir, "--format", "parquet").exit_code == 2
