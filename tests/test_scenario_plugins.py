"""Scenarios are plugins: one defined outside harness (tests/plugins' ``burst``) is listed,
configured from the CLI and from TOML, run in a worker and recorded, with no edit to harness/;
and the built-ins, registered the same way, keep the identities (record keys) they had."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.engine.spec import BenchmarkSpec
from harness.presentation.cli import cli
from harness.results.store import read_records

FIXTURE_RUNS = Path(__file__).resolve().parent / "fixtures" / "runs-2026-12-01"


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), prog_name="bakeoff")


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    return line


def _run(out: Path, *args: str) -> list[dict]:
    result = invoke("run", "-b", "null", "-w", "noop", "--warmup", "1", "--out", str(out), "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["records"]


def test_a_plugin_scenario_is_listed_with_its_settings(test_plugins):
    result = invoke("scenarios", "--json")
    assert result.exit_code == 0, result.output
    by_name = {row["name"]: row for row in json.loads(result.stdout)}
    assert {"single-stream", "offline", "server", "concurrent", "burst"} <= set(by_name)
    burst = by_name["burst"]
    assert "bakeoff_testing.scenarios:Burst" in burst["plugin"]
    assert {s["key"]: s["default"] for s in burst["settings"]} == {"size": 4, "gap_ms": 2, "bursts": 3}
    table = invoke("scenarios")
    assert table.exit_code == 0 and "burst" in table.stdout and "size=4" in table.stdout


def test_a_plugin_scenario_runs_in_a_worker_configured_from_the_command_line(test_plugins, tmp_path):
    (record,) = _run(tmp_path, "-s", "burst", "--scenario-option", "burst.size=3",
                     "--scenario-option", "burst.bursts=2")  # the default subprocess launcher
    assert record["status"] == "ok", record.get("failure")
    assert record["spec"]["scenario"] == "burst"
    assert record["spec"]["scenario_options"] == {"size": 3, "bursts": 2}
    assert len(record["measurement"]["latencies_ns"]) == 6
    scenario = record["scenario"]
    assert scenario["name"] == "burst" and scenario["metric"]["name"] == "p99_latency"
    assert scenario["burst_size"] == 3 and scenario["valid"] is True


def test_a_plugin_scenario_is_configured_from_toml(test_plugins, tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text('[sweep]\nbackends = ["null"]\nworkloads = ["noop"]\nscenarios = ["burst"]\n'
                      '[scenario.burst]\nsize = 2\nbursts = 1\n')
    (record,) = _run(tmp_path / "out", "--config", str(config), "--launcher", "inline")
    assert record["spec"]["scenario_options"] == {"size": 2, "bursts": 1}
    assert len(record["measurement"]["latencies_ns"]) == 2
    # the command line overrides the file, key by key
    (record,) = _run(tmp_path / "out2", "--config", str(config), "--launcher", "inline",
                     "--scenario-option", "burst.size=1")
    assert record["spec"]["scenario_options"] == {"size": 1, "bursts": 1}


def test_scenario_settings_are_part_of_the_identity_and_defaults_drop_out(test_plugins):
    def key(**settings):
        return BenchmarkSpec.create(backend="null", device="fake", workload="noop", scenario="burst",
                                    scenario_options=settings).key()

    assert key(size=3) != key(size=2)
    assert key() != BenchmarkSpec.create(backend="null", device="fake", workload="noop").key()


def test_explicit_default_setting_is_the_same_benchmark(test_plugins, tmp_path):
    (plain,) = _run(tmp_path / "a", "-s", "burst", "--launcher", "inline", "--scenario-option", "burst.bursts=1")
    (default,) = _run(tmp_path / "b", "-s", "burst", "--launcher", "inline", "--scenario-option", "burst.bursts=1",
                      "--scenario-option", "burst.size=4")
    assert plain["key"] == default["key"] and default["spec"]["scenario_options"] == {"bursts": 1}


@pytest.mark.parametrize("args, message", [
    (["-s", "burst", "--scenario-option", "burst.sizee=3"],
     "scenario setting burst.sizee: unknown setting (settings of burst: bursts, gap_ms, size)"),
    (["-s", "burst", "--scenario-option", "burst.size=many"], "scenario setting burst.size = 'many': must be an integer"),
    (["-s", "burst", "--scenario-option", "burst.size=0"], "scenario setting burst.size = 0: must be >= 1"),
    (["--scenario-option", "burst.size=3"], "scenario settings for 'burst', which this run does not include"),
    (["-s", "burst", "--scenario-option", "size=3"], "--scenario-option 'size=3': expected SCENARIO.KEY=VALUE"),
    (["-s", "bursty"], "unknown scenario 'bursty' (known: burst, concurrent, offline, server, single-stream)"),
])
def test_bad_scenario_settings_are_one_line_exit_2_before_anything_runs(test_plugins, tmp_path, args, message):
    out = tmp_path / "results"
    line = one_line_error(invoke("run", "-b", "null", "-w", "noop", "--out", str(out), *args))
    assert message in line
    assert not out.exists()


def test_the_built_in_scenarios_keep_the_keys_of_runs_written_before_they_became_plugins():
    """Every record of the frozen runs (server and single-stream, written by the code before
    this change) keys to the same name from its own spec."""
    checked = 0
    for run in sorted(p for p in FIXTURE_RUNS.iterdir() if (p / "run.json").exists()):
        for record in read_records(run):
            assert BenchmarkSpec.from_dict(record["spec"]).key() == record["key"]
            checked += 1
    assert checked >= 12
    scenarios = {r["spec"]["scenario"] for run in FIXTURE_RUNS.iterdir() if (run / "run.json").exists()
                 for r in read_records(run)}
    assert scenarios == {"single-stream", "server"}
