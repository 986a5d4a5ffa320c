"""Optional capabilities: everything a plugin may offer beyond the required contract.

harness/contract/interface.py holds what every backend, prepared object and workload
must have. This module declares, one Protocol each, what they *may* have: a
streaming step, options, a Ray placement, energy meters, a generative model.
Core code asks for a capability in one way only, :func:`capability`, so

* a plugin author finds every hook here, with its docstring, and
  ``docs/writing-a-backend.md`` lists the same set (a test keeps them equal);
* a misspelt hook is not silently ignored: :func:`suspect_hooks` names any
  attribute that is one typo away from a declared member, and the conformance
  kit (harness/testing.py) fails on it;
* the kit reports which capabilities a plugin offers (:func:`offered`).

A capability is offered when the object has all its members (a
``runtime_checkable`` Protocol check); flags such as ``concurrent_safe`` are
then read for their value. Nothing here imports anything heavy.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence, TypeVar, runtime_checkable

BACKEND, PREPARED, WORKLOAD = "backend", "prepared", "workload"

C = TypeVar("C")


def capability(plugin: Any, kind: type[C]) -> C | None:
    """``plugin`` as a ``kind`` when it offers that capability, else ``None``.

    The one way core asks a plugin for something optional: never ``getattr``
    with a default, so every hook core reads is declared in this module.
    """
    return plugin if plugin is not None and isinstance(plugin, kind) else None  # type: ignore[return-value]


# -- backend capabilities ------------------------------------------------------------------------

@runtime_checkable
class DeclaresOptions(Protocol):
    """Options a user sets with ``-O backend.key=value`` (or ``[backend.NAME]`` in a config).

    ``OPTIONS`` maps each key to a :class:`harness.contract.options.Option` (type,
    default, choices, help). Values are validated before anything runs, a list
    value sweeps, and the options that differ from their defaults become part
    of the benchmark's identity. ``bakeoff backends --options`` lists them.
    """

    OPTIONS: Mapping[str, Any]


@runtime_checkable
class ChecksOptions(Protocol):
    """A check of one validated option set against a device, before anything runs.

    Raise ``ValueError`` with a readable reason (an option that has no effect
    on that device, a combination the runtime refuses); the sweep turns it
    into a one-line error naming the backend and device.
    """

    def check_options(self, device: str, options: Mapping[str, Any]) -> None: ...


@runtime_checkable
class RequiresOptions(Protocol):
    """Option keys without which the backend cannot run at all (an endpoint's ``url``).

    A sweep that does not set them stops with a one-line error saying which
    ``-O`` to add.
    """

    required_options: Sequence[str]


@runtime_checkable
class SweepMembership(Protocol):
    """``default_sweep = False`` keeps the backend out of a run that names no backends.

    For backends that need the user's input before they can run (an endpoint
    URL); they are still listed by ``bakeoff backends`` and run when named.
    """

    default_sweep: bool


@runtime_checkable
class RayPlacement(Protocol):
    """The Ray resources one benchmark on ``device`` needs on a cluster node.

    Returns ``{"num_gpus": 1}``, ``{"resources": {"NPU": 1}}`` and the like,
    or ``None`` for CPUs only. ``--executor ray`` schedules each benchmark
    where its device is (docs/fleet.md).
    """

    def ray_requirements(self, device: str) -> Mapping[str, Any] | None: ...


@runtime_checkable
class DeclaresSupport(Protocol):
    """Which workloads and dtypes the backend runs on a device, declared up front.

    ``unsupported_reason(workload, dtype, device)`` returns ``None`` where it
    runs, else the reason. A sweep records the rest as ``unsupported`` with that
    reason without starting a worker or preparing anything, and the
    conformance suite checks only what is declared. ``prepare`` may still raise
    ``Unsupported`` for what is known only there (a provider's refusal).
    """

    def unsupported_reason(self, workload: str, dtype: str, device: str) -> str | None: ...


@runtime_checkable
class DeclaresPrecisions(Protocol):
    """The precisions (harness/contract/precisions.py) the backend runs, by name.

    A backend that does not declare this runs the classic four (float32, float16,
    bfloat16, int8); any other dtype is recorded ``unsupported`` before a worker
    starts, with a reason naming the runtimes that run it. A device-specific refusal
    (fp8 without a float8 unit) still comes from ``prepare`` as ``Unsupported``.
    """

    precisions: tuple[str, ...]


@runtime_checkable
class DeviceMemoryReporting(Protocol):
    """Whether the prepared objects on ``device`` report device memory (``peak_memory_bytes()``).

    Declared, it is a promise the conformance suite holds the backend to: a
    ``None`` peak on such a device fails it, where an undeclared ``None`` only
    means "not reported".
    """

    def reports_device_memory(self, device: str) -> bool: ...


@runtime_checkable
class LoadDefaults(Protocol):
    """Scenario defaults that fit this backend's request latencies, used where the user set none.

    ``load_defaults`` maps dotted field names of the run's stopping rule
    (``stopping.max_duration_s``, ``stopping.min_iterations``) and load settings
    (``server.latency_slo_s``, ``server.min_queries``, ``server.ttft_bound_s``, ...) to
    values. The general defaults (a 100 ms SLO, 1,000 queries, 10 s) are made for kernels
    that take microseconds; a serving endpoint's requests take seconds, so under them every
    run is invalid. A value the user gave always wins: a flag or config key, and in the Python
    API a field that differs from the general default or that ``explicit`` names.
    ``harness.contract.load.SERVING_LOAD_DEFAULTS`` is the profile for LLM endpoints.
    """

    load_defaults: Mapping[str, Any]


# -- prepared-object capabilities -------------------------------------------------------------------

@runtime_checkable
class StreamingStep(Protocol):
    """A step that reports each generated token as it arrives.

    ``step_streaming(mark)`` does one step and calls ``mark()`` the moment
    each token (or streamed chunk) is available; the runner stamps the clock
    at each call, giving TTFT, TPOT and inter-token latency. Offer it for
    generative workloads and streaming endpoints. The plain ``step()`` must
    still work.

    It returns the number of tokens the step generated when it knows better
    than its marks (a server that packs several tokens into one chunk reports
    them in its usage), else ``None``: one mark, one token. TPOT and token rates
    divide by tokens; inter-token latency stays the gap between marks. A
    reasoning model's step returns a :class:`StreamedReply` instead, naming the
    mark that carried the first answer token, so the record gives both TTFT
    (first token of any kind) and the time to the first answer token.
    """

    def step_streaming(self, mark: Callable[[], None]) -> "int | StreamedReply | None": ...


@dataclass(frozen=True)
class StreamedReply:
    """What a streaming step may return: its token count (``None``: one per mark) and the index
    of the mark that carried the first answer token after reasoning (``None``: no reasoning, so
    the first mark; past the last mark: the reply only reasoned, so it has no time to first
    answer). Not a capability: the return value of ``StreamingStep.step_streaming``."""

    tokens: int | None = None
    first_answer_mark: int | None = None


@runtime_checkable
class ConcurrentSteps(Protocol):
    """``concurrent_safe = True``: ``step`` may run from several threads at once.

    The concurrent scenario (N closed-loop clients) needs it; a prepared
    object without it gets ``unsupported`` for that scenario. An endpoint
    client is safe; one in-process model with one set of buffers is not.
    """

    concurrent_safe: bool


@runtime_checkable
class RemoteIdentity(Protocol):
    """What stands behind a remote endpoint, learnt only in ``prepare``.

    ``device_overrides`` (``{"model": "8x H100", "engine": "vllm 0.11"}``)
    is merged over the device's identity in the record, so a served model is
    compared and priced as the hardware that served it.
    """

    device_overrides: Mapping[str, Any]


@runtime_checkable
class FailureTolerance(Protocol):
    """The share of failed queries (0..1) a run may have and still be valid.

    For remote backends, whose requests can fail (HTTP 5xx, timeouts).
    Failures are counted by cause and never timed; above this rate the
    result is invalid.
    """

    max_failure_rate: float


@runtime_checkable
class Generation(Protocol):
    """Free generation from arbitrary prompt ids, for ``bakeoff serve``.

    ``generate(prompt_ids, max_tokens, on_token)`` runs greedy decode and calls
    ``on_token(id)`` for every new token.
    """

    def generate(self, prompt_ids: Any, max_tokens: int, on_token: Callable[[int], None]) -> None: ...


@runtime_checkable
class StoredWeights(Protocol):
    """The bytes of weights the runtime actually stored, read from what it loaded (a GGUF's
    tensor sizes, an ONNX file's initializers), with how they were counted.

    Weight-only formats keep some tensors wider than their nominal bits (llama.cpp's
    ``_K_M`` mixes, embeddings a runtime leaves in float), so the record's weight bytes
    and the decode roofline use this figure where it is offered, and the nominal
    (parameters x bits per weight) elsewhere. The runner asks after ``close()``, so count
    them in ``prepare``.
    """

    def stored_weight_bytes(self) -> tuple[int, str]: ...


@runtime_checkable
class StoredKvCache(Protocol):
    """Bytes per token of the KV cache the runtime keeps, where it differs from the workload's
    tensors (llama.cpp caches float16 for a float32-fed quantized model), and how that was
    counted. Asked after ``close()``, like ``StoredWeights``."""

    def stored_kv_bytes_per_token(self) -> tuple[int, str]: ...


@runtime_checkable
class EnergyMetered(Protocol):
    """The energy meters that can see the device this prepared object runs on.

    ``energy_meters()`` returns meters such as
    :class:`harness.engine.telemetry.NvmlMeter` (NVIDIA), ``NpuSmiMeter`` (Ascend),
    ``RaplMeter`` (the host CPU package), or the plugin's own; each says
    whether it can read. The runner starts them around the timed region and
    never picks a meter by device name. Without this capability the record's
    energy is ``null``, with the reason. Return ``[]`` for work on another
    machine (an endpoint): the local host's power is not the candidate's.
    """

    def energy_meters(self) -> Sequence[Any]: ...


# -- workload capabilities --------------------------------------------------------------------------

@runtime_checkable
class Described(Protocol):
    """Facts about the workload for the record (``details.workload``): e.g. where its weights came from."""

    def describe(self) -> Mapping[str, Any]: ...


@runtime_checkable
class ModelFacts(Protocol):
    """Parameter and byte counts of a decoder, for the decode roofline and the report."""

    def parameter_count(self) -> int: ...

    def weight_bytes(self, dtype: str) -> int: ...

    def bytes_per_decode_step(self, batch_size: int, dtype: str) -> float: ...


@runtime_checkable
class KvCacheFacts(Protocol):
    """Bytes the KV cache holds per token at a dtype (every layer's cache tensors), for the
    record: grouped-query and latent attention differ here by design."""

    def kv_bytes_per_token(self, dtype: str) -> int: ...


@runtime_checkable
class SparseActivation(Protocol):
    """Parameters one token actually uses (a mixture of experts routes to a few)."""

    def active_parameter_count(self) -> int: ...


@dataclass(frozen=True)
class KvLayout:
    """The KV cache's layout: tensors ``[layers, batch, kv_heads, tokens, head_dim]``, keys and values
    apart. Under latent attention the "key" tensor is the latent (``head_dim`` wide) and the
    "value" tensor the rotary key, ``value_dim`` wide; ``None`` means as wide as the keys."""

    layers: int
    kv_heads: int
    head_dim: int
    axes: tuple[str, ...] = ("layers", "batch", "kv_heads", "tokens", "head_dim")
    value_dim: int | None = None

    @property
    def value_width(self) -> int:
        return self.head_dim if self.value_dim is None else self.value_dim


@runtime_checkable
class Generative(Protocol):
    """A KV-cache decoder: prefill, then greedy decode of ``new_tokens`` tokens.

    The module takes ``(input_ids, past_key, past_value)`` and returns
    ``(next_token, logits, present_key, present_value)``, caches laid out as
    :meth:`kv_layout` says. ``example_inputs`` are the prefill call's (the
    prompt and an empty cache); ``decode_example_inputs`` one decode call's,
    for exporting the decode graph. A step generates ``new_tokens`` tokens
    (the first from prefill), so backends stream them through
    :class:`StreamingStep` (see :class:`harness.engine.generation.GenerativePrepared`).
    """

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def new_tokens(self) -> int: ...

    @property
    def vocab_size(self) -> int: ...

    def kv_layout(self) -> KvLayout: ...

    def decode_example_inputs(self, batch_size: int, dtype: str) -> tuple[Any, ...]: ...


@runtime_checkable
class OnnxModelFile(Protocol):
    """A workload that is an ONNX file, not a torch module (the user's ``--model model.onnx``).

    ONNX-capable backends load ``onnx_path``; others raise ``Unsupported``.
    """

    onnx_path: Path


# -- the table of capabilities, and what the conformance kit does with it -------------------------

@dataclass(frozen=True)
class Capability:
    """One declared capability: its Protocol, who may offer it, and its members."""

    protocol: type
    target: str

    @property
    def name(self) -> str:
        return self.protocol.__name__

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(sorted(_protocol_members(self.protocol)))

    @property
    def summary(self) -> str:
        return (inspect.getdoc(self.protocol) or "").split("\n\n")[0].replace("\n", " ")


def _protocol_members(protocol: type) -> set[str]:
    names = set(getattr(protocol, "__annotations__", {}))  # data members
    names |= {name for name, value in vars(protocol).items()
              if not name.startswith("_") and (callable(value) or isinstance(value, property))}
    return names


CAPABILITIES: tuple[Capability, ...] = (
    Capability(DeclaresOptions, BACKEND), Capability(ChecksOptions, BACKEND), Capability(RequiresOptions, BACKEND),
    Capability(SweepMembership, BACKEND), Capability(RayPlacement, BACKEND), Capability(DeclaresSupport, BACKEND),
    Capability(DeclaresPrecisions, BACKEND), Capability(DeviceMemoryReporting, BACKEND), Capability(LoadDefaults, BACKEND),
    Capability(StreamingStep, PREPARED), Capability(ConcurrentSteps, PREPARED), Capability(RemoteIdentity, PREPARED),
    Capability(FailureTolerance, PREPARED), Capability(Generation, PREPARED), Capability(EnergyMetered, PREPARED),
    Capability(StoredWeights, PREPARED), Capability(StoredKvCache, PREPARED),
    Capability(Described, WORKLOAD), Capability(ModelFacts, WORKLOAD), Capability(KvCacheFacts, WORKLOAD),
    Capability(SparseActivation, WORKLOAD),
    Capability(Generative, WORKLOAD), Capability(OnnxModelFile, WORKLOAD),
)


def required_members(target: str) -> set[str]:
    """The members of the required contract (harness/contract/interface.py) for ``target``."""
    from harness.contract.interface import Backend, Prepared, Workload

    if target == BACKEND:
        return _protocol_members(Backend) | {"name"}
    base = Prepared if target == PREPARED else Workload
    return {name for klass in base.__mro__ for name in vars(klass) if not name.startswith("_")} | set(
        getattr(base, "__annotations__", {}))


def offered(plugin: Any, target: str) -> list[str]:
    """Names of the capabilities ``plugin`` (a ``target``) offers."""
    return [c.name for c in CAPABILITIES if c.target == target and isinstance(plugin, c.protocol)]


def _own_attributes(plugin: Any) -> dict[str, bool]:
    """Public attributes the plugin itself defines (not harness's base classes), each with
    whether it is a method (callable) or data."""
    found: dict[str, bool] = {}
    for klass in reversed(type(plugin).__mro__):
        if klass.__module__.startswith("harness.") or klass is object:
            continue
        for name, value in vars(klass).items():
            found[name] = callable(value) and not isinstance(value, type)
    for name, value in (vars(plugin) if hasattr(plugin, "__dict__") else {}).items():
        found[name] = callable(value) and not isinstance(value, type)
    return {name: method for name, method in found.items() if not name.startswith("_")}


def _member_kinds(protocol: type) -> dict[str, bool]:
    """Each member of ``protocol``: True for a method, False for data (an attribute or property)."""
    data = set(getattr(protocol, "__annotations__", {}))
    return {name: name not in data and not isinstance(vars(protocol).get(name), property)
            for name in _protocol_members(protocol)}


@dataclass(frozen=True)
class SuspectHook:
    """An attribute that looks like a hook but is not one: a typo, or a hook on the wrong object."""

    attribute: str
    nearest: str
    capability: str
    target: str

    def message(self, where: str) -> str:
        if self.attribute == self.nearest:
            return (f"{where} defines {self.attribute!r}, a member of capability {self.capability} of a "
                    f"{self.target} object: put it on the {self.target}, where harness looks for it")
        return (f"{where} defines {self.attribute!r}, which no capability declares: did you mean "
                f"{self.nearest!r} (capability {self.capability}, harness/contract/capabilities.py)?")


def suspect_hooks(plugin: Any, target: str, cutoff: float = 0.8) -> list[SuspectHook]:
    """Attributes of ``plugin`` one typo away from a declared member, and backend hooks defined
    on the prepared object (or the other way round).

    Such an attribute would be silently ignored (harness never looks for it):
    a plugin author's ``step_streming`` would quietly lose its TTFT. Methods
    are compared with methods and data with data, so a prepared object's
    ``output`` buffer is not taken for the ``outputs()`` method.
    """
    own = _own_attributes(plugin)
    mine = required_members(target) | {m for c in CAPABILITIES if c.target == target for m in c.members}
    owner: dict[str, Capability] = {}
    kinds: dict[str, bool] = {}
    for cap in CAPABILITIES:
        for member, is_method in _member_kinds(cap.protocol).items():
            owner.setdefault(member, cap)
            kinds.setdefault(member, is_method)
    suspects = []
    for attribute in sorted(set(own) - mine):
        if attribute in owner and {target, owner[attribute].target} == {BACKEND, PREPARED}:
            cap = owner[attribute]  # a backend's hook on the prepared object, or the other way round
            suspects.append(SuspectHook(attribute, attribute, cap.name, cap.target))
            continue
        alike = [m for c in CAPABILITIES if c.target == target for m in c.members if kinds[m] == own[attribute]]
        nearest = difflib.get_close_matches(attribute, alike, n=1, cutoff=cutoff)
        if nearest:
            cap = owner[nearest[0]]
            suspects.append(SuspectHook(attribute, nearest[0], cap.name, cap.target))
    return suspects


def markdown_table() -> str:
    """The capability table of docs/writing-a-backend.md (a test keeps the doc equal to this)."""
    lines = ["| capability | offered by | members | what it is for |", "|---|---|---|---|"]
    for cap in CAPABILITIES:
        members = ", ".join(f"`{m}`" for m in cap.members)
        lines.append(f"| `{cap.name}` | {cap.target} | {members} | {cap.summary} |")
    return "\n".join(lines)
