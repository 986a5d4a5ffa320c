"""The CLI through click's CliRunner and as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.presentation.cli import cli
from harness.results.frame import load

BAKEOFF = Path(sys.executable).parent / "bakeoff"
COMMANDS = ["backends", "workloads", "run", "show"]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), prog_name="bakeoff")


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bakeoff: error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_no_arguments_prints_help():
    result = invoke()
    assert result.exit_code == 0
    assert "Usage: bakeoff" in result.stdout
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout
    assert f"bakeoff {command}" in result.stdout


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and "bakeoff" in result.stdout


def test_backends_json_lists_the_three_cpu_backends():
    result = invoke("backends", "--json")
    assert result.exit_code == 0, result.output
    rows = {(r["backend"], r["device"]): r for r in json.loads(result.stdout)}
    for key in [("torch", "cpu"), ("onnxruntime", "CPUExecutionProvider"), ("openvino", "CPU")]:
        assert rows[key]["available"] is True, rows.get(key)
        assert rows[key]["version"]
        assert rows[key]["model"] and rows[key]["memory_bytes"] > 0
        assert "catalog" in rows[key]  # the catalog match (or null) is always reported
        if "AMD EPYC" in rows[key]["model"]:
            assert rows[key]["catalog"] == "amd-epyc"


def test_broken_plugin_does_not_break_commands(test_plugins, results_dir):
    result = invoke("backends", "--json")
    assert result.exit_code == 0
    rows = {(r["backend"], r["device"]): r for r in json.loads(result.stdout)}
    assert rows[("broken", None)]["available"] is False
    assert "ModuleNotFoundError" in rows[("broken", None)]["reason"]
    assert rows[("torch", "cpu")]["available"] is True

    table = invoke("backends")
    assert table.exit_code == 0 and "plugin failed to load" in table.stdout

    listing = invoke("workloads", "--json")
    assert listing.exit_code == 0
    names = {w["name"]: w for w in json.loads(listing.stdout)}
    assert "error" in names["broken-workload"] and names["gemm"]["unit"] == "FLOP"

    run = invoke("run", "-b", "null", "-w", "noop", "--launcher", "inline", "--iterations", "7",
                 "--out", str(results_dir))
    assert run.exit_code == 0, run.output


def test_run_json_and_show(test_plugins, results_dir):
    result = invoke("run", "-b", "null", "-b", "raising", "-w", "noop", "--batch-size", "1",
                    "--batch-size", "4", "--launcher", "inline", "--iterations", "6",
                    "--out", str(results_dir), "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # stdout is pure JSON; progress went to stderr
    assert len(payload["records"]) == 4
    statuses = sorted(r["status"] for r in payload["records"])
    assert statuses == ["failed", "failed", "ok", "ok"]
    run_dir = Path(payload["run_dir"])
    assert len(load(run_dir)) == 4

    shown = invoke("show", payload["run_id"], "--results-dir", str(results_dir))
    assert shown.exit_code == 0, shown.output
    assert payload["run_id"] in shown.stdout and "device lost" in shown.stdout

    as_json = invoke("show", str(run_dir), "--json")
    assert json.loads(as_json.stdout)["manifest"]["run_id"] == payload["run_id"]


def test_table_output_shows_units_and_intervals(test_plugins, results_dir):
    # planted: its device timer reports ~50 µs steps, so the median is in µs however busy the machine is
    result = invoke("run", "-b", "planted", "-w", "noop", "-p", "service_us=50", "--launcher", "inline",
                    "--iterations", "30", "--out", str(results_dir))
    assert result.exit_code == 0, result.output
    assert "µs [" in result.stdout  # median with its confidence interval
    assert "op/s" in result.stdout
    assert "95% CI" in result.stdout


@pytest.mark.parametrize("args, fragments", [
    (["run", "-b", "tpu"], ["unknown backend 'tpu'", "torch"]),
    (["run", "-w", "resnet"], ["unknown workload 'resnet'", "gemm"]),
    (["run", "--dtype", "int3"], ["unknown dtype 'int3'", "float32"]),
    (["run", "-w", "gemm", "-p", "size=big"], ["size='big'", "int"]),
    (["run", "-w", "gemm", "-p", "colour=red"], ["--param colour", "size"]),
    (["run", "-w", "gemm", "-p", "size"], ["--param 'size'", "KEY=VALUE"]),
    (["run", "--iterations", "0"], ["'--iterations': 0 is not in the range 1<=x<="]),
    (["run", "--target-ci", "2"], ["--target-ci", "0<x<1"]),
    (["run", "--warmup", "-1"], ["--warmup", "0<=x<="]),
    (["run", "--memory-limit", "lots"], ["--memory-limit", "'lots' is not a size"]),
    (["run", "-s", "server", "-w", "gemm"], ["server scenario needs a target QPS"]),
    (["run", "-s", "batch"], ["unknown scenario 'batch' (known: concurrent, offline, server, single-stream"]),
    (["run", "--config", "/nonexistent/sweep.toml"], ["no such config file", "/nonexistent/sweep.toml"]),
    (["run", "--resume", "nope"], ["no run 'nope'"]),
    (["run", "--batch-size", "0"], ["batch size 0"]),
    (["run", "--threads", "0"], ["--threads", "1<=x<=4096"]),
    (["run", "-d", "tpu:0"], ["unknown device 'tpu:0'"]),
    (["run", "--launcher", "ray"], ["'ray' is not one of"]),
    (["run", "--bogus"], ["No such option"]),
    (["show", "no-such-run"], ["no run 'no-such-run'"]),
    (["frobnicate"], ["No such command"]),
])
def test_bad_input_is_one_line_and_exit_2(args, fragments, tmp_path):
    if args[0] == "show":
        args = [*args, "--results-dir", str(tmp_path)]
    assert_one_line_error(invoke(*args), *fragments)


def test_unavailable_backend_is_a_note_and_other_backends_run(test_plugins, results_dir):
    result = invoke("run", "-b", "absent", "-b", "null", "-w", "noop", "--launcher", "inline",
                    "--iterations", "5", "--out", str(results_dir))
    assert result.exit_code == 0, result.output
    assert "backend 'absent' skipped: no Fake accelerator found" in result.stderr
    only_absent = invoke("run", "-b", "absent", "-w", "noop", "--out", str(results_dir))
    assert_one_line_error(only_absent, "nothing to run", "no Fake accelerator found")


def test_show_corrupt_results_file_is_one_line(test_plugins, results_dir):
    result = invoke("run", "-b", "null", "-w", "noop", "--launcher", "inline", "--iterations", "5",
                    "--out", str(results_dir), "--json")
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    record = next((run_dir / "records").glob("*.json"))
    record.write_text("{truncated")
    assert_one_line_error(invoke("show", str(run_dir)), str(record), "not valid JSON")


# -- as a real subprocess --------------------------------------------------------

def run_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    command = [str(BAKEOFF)] if BAKEOFF.exists() else [sys.executable, "-m", "harness.presentation.cli"]
    env = {**os.environ, "COLUMNS": "200"}  # wide enough that table cells are not folded
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=600, env=env, **kw)


def test_subprocess_backends_json_acceptance():
    result = run_cli("backends", "--json")
    assert result.returncode == 0, result.stderr
    available = {(r["backend"], r["device"]) for r in json.loads(result.stdout) if r["available"]}
    assert {("torch", "cpu"), ("onnxruntime", "CPUExecutionProvider"), ("openvino", "CPU")} <= available


@pytest.mark.slow
def test_subprocess_run_three_backends_gemm_acceptance(results_dir):
    result = run_cli("run", "-b", "torch", "-b", "onnxruntime", "-b", "openvino", "-w", "gemm",
                     "-p", "size=128", "--iterations", "10", "--warmup", "2", "--out", str(results_dir))
    assert result.returncode == 0, result.stderr
    for device in ("cpu", "CPUExecutionProvider", "CPU"):
        assert f"│ {device} " in result.stdout
    frame = load(results_dir)
    assert len(frame) == 3
    assert {"run_id", "backend", "device", "workload", "dtype", "batch_size", "unit", "median_s",
            "p99_s", "throughput"} <= set(frame.columns)
    assert set(frame.status) == {"ok"}, frame[["backend", "reason"]]
    assert (frame.throughput > 0).all() and set(frame.throughput_unit) == {"FLOP/s"}
    assert (frame["param.size"] == 128).all()


def test_subprocess_user_error_has_no_traceback():
    result = run_cli("run", "-b", "nope")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "bakeoff: error: unknown backend 'nope' (known: llama-cpp, onnxruntime, onnxruntime-genai, openai-http, "
            "openvino, openvino-genai, torch)"
    ]
