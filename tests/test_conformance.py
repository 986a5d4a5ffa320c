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
    with pytest.raises(ConformanceError, match="must raise harness.errors.Unsupported"):
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
