"""The conformance suite (harness.testing): every built-in backend passes it, and broken
backends fail it with messages that explain the problem."""

from __future__ import annotations

import pytest

from harness import testing
from harness.testing import BackendConformance, ConformanceError

pytestmark = pytest.mark.slow


class TestTorchConformance(BackendConformance):
    backend = "torch"
    device = "cpu"


class TestOnnxRuntimeConformance(BackendConformance):
    backend = "onnxruntime"
    device = "CPUExecutionProvider"


class TestOpenVinoConformance(BackendConformance):
    backend = "openvino"
    device = "CPU"


def test_a_correct_asynchronous_backend_passes_the_timing_contract(test_plugins):
    evidence = testing.check_timing("queued", "queue0")
    assert evidence.ratio >= testing.MIN_WORK_RATIO


def test_a_backend_that_does_not_synchronize_fails_the_timing_contract(test_plugins):
    with pytest.raises(ConformanceError) as error:
        testing.check_timing("unsynchronized", "queue0")
    message = str(error.value)
    assert "unsynchronized on queue0" in message
    assert "returns before the device has finished" in message and "synchronize()" in message


def test_a_probe_that_raises_fails_the_availability_contract(test_plugins):
    with pytest.raises(ConformanceError, match=r"probe\(\) raised .*must never raise"):
        testing.check_availability("probe-raises")


def test_unavailable_backends_pass_availability_and_skip_the_device_contracts(test_plugins):
    assert testing.check_availability("absent").reason
    assert testing.first_available_device("absent") is None


def test_a_backend_without_outputs_fails_parity(test_plugins):
    with pytest.raises(ConformanceError, match=r"parity was not checked"):
        testing.check_parity("null", "fake", [("noop", {})])


def test_a_wrong_backend_fails_parity(test_plugins):
    with pytest.raises(ConformanceError, match="outputs differ from the float32 CPU reference"):
        testing.check_parity("liar", "fake", [("echo", {})])


def test_a_backend_that_crashes_on_other_dtypes_fails_error_mapping(test_plugins):
    """"raising" raises a plain exception in every step: its float32 gemm already fails."""
    with pytest.raises(ConformanceError, match="must raise harness.contract.errors.Unsupported"):
        testing.check_error_mapping("raising", "fake")


def test_an_unknown_backend_name_says_how_to_register_it():
    with pytest.raises(ConformanceError, match="bakeoff.backends entry point"):
        testing.check_availability("no-such-backend")


def test_a_misspelt_hook_fails_conformance_naming_it_and_the_nearest_capability(test_plugins):
    with pytest.raises(ConformanceError) as error:
        testing.check_capabilities("typo", "queue0")
    message = str(error.value)
    assert "'check_option', which no capability declares: did you mean 'check_options' (capability ChecksOptions" \
        in message
    assert "'step_streming', which no capability declares: did you mean 'step_streaming' (capability StreamingStep" \
        in message


def test_the_capabilities_contract_reports_what_a_correct_backend_offers(test_plugins):
    assert testing.check_capabilities("queued", "queue0") == {"backend": [], "prepared gemm": []}
    offered = testing.check_capabilities("torch", "cpu")
    assert {"DeclaresOptions", "ChecksOptions", "RayPlacement"} <= set(offered["backend"])
    assert {"StreamingStep", "Generation", "EnergyMetered"} <= set(offered["prepared llm"])
    assert "StreamingStep" not in offered["prepared gemm"]


def test_a_backend_that_declares_its_workloads_passes_and_is_never_prepared_for_others(test_plugins):
    """Before DeclaresSupport, a gemm-and-mlp backend failed error mapping on the kit's own
    injected workload; now the fault comes through a gemm it runs."""
    verdicts = testing.check_error_mapping("picky", "queue0")
    assert verdicts["float32"] == "ok" and verdicts["float16"] == "unsupported"
    assert verdicts["runtime error"] == "failed, with its message"
    parity = testing.check_parity("picky", "queue0")
    assert parity["llm"] == "unsupported: picky runs gemm and mlp only"
    assert parity["gemm"].startswith("ok") and parity["gemm (batch 2)"].startswith("ok")


def test_the_sweep_records_a_declared_refusal_without_a_worker(test_plugins, tmp_path):
    from click.testing import CliRunner
    import json

    from harness.presentation.cli import cli

    result = CliRunner().invoke(cli, ["run", "-b", "picky", "-w", "gemm", "-w", "llm", "-p", "gemm.size=16",
                                      "--iterations", "3", "--warmup", "0", "--out", str(tmp_path), "--json"],
                                prog_name="bakeoff")
    assert result.exit_code == 0, result.output
    by_workload = {r["spec"]["workload"]: r for r in json.loads(result.stdout)["records"]}
    assert by_workload["gemm"]["status"] == "ok"
    llm = by_workload["llm"]
    assert (llm["status"], llm["reason"]) == ("unsupported", "picky runs gemm and mlp only")
    assert "isolation" not in (llm.get("details") or {})  # no worker process was started for it


def test_a_declared_memory_report_that_is_missing_fails_the_memory_contract(test_plugins):
    with pytest.raises(ConformanceError, match=r"declares device memory reporting .* returned None"):
        testing.check_memory("forgetful", "queue0")
    assert testing.check_memory("queued", "queue0") is None  # undeclared: None only means "not reported"


def test_a_backend_that_ignores_the_batch_fails_parity_at_batch_size_2(test_plugins):
    with pytest.raises(ConformanceError, match=r"gemm \{'size': 64\} at batch size 2: outputs differ"):
        testing.check_parity("batch-blind", "queue0", [("gemm", {"size": 64})])
