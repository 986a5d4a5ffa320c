"""What the runtimes that take the llm workload as a whole model share (llama-cpp,
onnxruntime-genai, openvino-genai): the device list, the preconditions, and a prepared
object that keeps the greedy tokens and first logits for parity and the stored weight bytes."""

from __future__ import annotations

from typing import Any, Mapping

from harness.contract.capabilities import Generative, capability
from harness.contract.errors import Unsupported
from harness.contract.interface import Availability, DeviceInfo, Prepared
from backends._host import HostEnergy, cpu_device_facts


def probe_imports(module: str, install: str, needed: tuple[str, ...], version: str | None) -> Availability:
    """Available when ``module`` (the runtime) and each of ``needed`` (what builds its model)
    import; otherwise the reason names the missing one and ``install``, the command that brings it."""
    import importlib

    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - a broken install is a reason, not a crash
        return Availability.no(f"{module} is not importable ({type(exc).__name__}: {exc}); {install}")
    for dependency in needed:
        try:
            importlib.import_module(dependency)
        except Exception as exc:  # noqa: BLE001
            return Availability.no(f"{dependency} is needed to build the model but is not importable ({exc})",
                                   version=version)
    return Availability.yes(version=version)


def cpu_and_absent_devices(backend: str, version: str | None, absent: Mapping[str, str]) -> list[DeviceInfo]:
    """The host CPU, available, and each device of ``absent`` listed unavailable with its reason."""
    devices = [DeviceInfo(backend=backend, device="cpu", runtime_version=version, **cpu_device_facts())]
    devices += [DeviceInfo(backend=backend, device=device, runtime_version=version, available=False, reason=reason)
                for device, reason in absent.items()]
    return devices


def require_cpu_llm(backend: str, workload: Any, spec: Any) -> Any:
    """The workload's ``Generative`` side, or :class:`Unsupported` off the CPU or for another workload."""
    if spec.device != "cpu":
        raise Unsupported(f"{backend} runs on the cpu here, not {spec.device}")
    generative = capability(workload, Generative)
    if generative is None or workload.name != "llm":
        raise Unsupported(f"{backend} runs the llm workload, not {workload.name}")
    return generative


class TokenLoopPrepared(HostEnergy, Prepared):
    """A runtime's own generation loop, marked once per token by the runner (``step_streaming``,
    defined by each runtime). Keeps the last step's tokens ``[B, G]`` and the prefill's last
    logits ``[B, V]`` for the parity check, and the weight bytes the runtime stored."""

    def __init__(self, stored: tuple[int, str]) -> None:
        Prepared.__init__(self)
        import numpy as np

        self._np, self._stored = np, stored
        self._tokens: Any = None
        self._first_logits: Any = None

    def step_streaming(self, mark) -> int:  # pragma: no cover - every runtime defines its own
        raise NotImplementedError

    def step(self) -> None:
        self.step_streaming(lambda: None)

    def outputs(self):
        if self._tokens is None:
            return None
        np = self._np
        tokens = np.asarray(self._tokens, dtype=np.int64)
        return [tokens, np.asarray(self._first_logits, dtype=np.float32).reshape(tokens.shape[0], -1)]

    def stored_weight_bytes(self) -> tuple[int, str]:
        return self._stored
