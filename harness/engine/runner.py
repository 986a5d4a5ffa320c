"""Running one benchmark: the one place that owns the clock.

:func:`execute` is what a worker does for one benchmark: resolve the plugins,
prepare outside the timed region, run the spec's scenario (which samples with
:mod:`harness.engine.timing`), and turn anything that goes wrong into a structured
:class:`Outcome` instead of an exception. Launchers run :func:`execute`
inline or in a fresh process.

The timebase is injectable so every loop is tested with fake time.
"""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from harness.contract.capabilities import (DeclaresPrecisions, DeclaresSupport, Described, EnergyMetered,
                                           FailureTolerance, Generative, KvCacheFacts, ModelFacts, RemoteIdentity,
                                           SparseActivation, StoredKvCache, StoredWeights, capability)
from harness.contract.errors import Unsupported
from harness.contract.errors import FAILED, OK, STATUSES, UNAVAILABLE, UNSUPPORTED  # noqa: F401 - statuses, re-exported
from harness.contract.interface import Availability, Prepared
from harness.contract.precisions import CLASSIC_PRECISIONS, refusal
from harness.engine.parity import compare
from harness.engine.plugins import Registry, describe_exception
from harness.engine.scenarios import ScenarioResult
from harness.engine.spec import BenchmarkSpec
from harness.engine.telemetry.interference import InterferenceWatch
from harness.engine.telemetry.meters import measure_energy
from harness.engine.timing import HOST, Timebase, TokenMarks, harness_overhead_ns, warm_up

#: Failure causes a record can carry.
CAUSES = ("error", "signal", "exit", "timeout", "out-of-memory", "interrupted", "lost")
# "lost": a fleet run's Ray worker or node died under the benchmark (harness/orchestration/fleet.py).


def _token_counts(offsets: Any) -> tuple[int | None, ...] | None:
    """The steps' own token counts (:class:`~harness.engine.timing.TokenMarks`), or ``None``
    when every request was counted one token per mark."""
    if not offsets:
        return None
    counts = tuple(marks.tokens if isinstance(marks, TokenMarks) else None for marks in offsets)
    return counts if any(c is not None for c in counts) else None


def _answer_marks(offsets: Any) -> tuple[int | None, ...] | None:
    """Per request, the mark of the first answer token after reasoning, or ``None`` when no
    request reasoned (the first mark is then every request's first answer)."""
    if not offsets:
        return None
    marks = tuple(m.first_answer if isinstance(m, TokenMarks) else None for m in offsets)
    return marks if any(m is not None for m in marks) else None


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Measurement:
    """Raw samples of one benchmark: one latency per timed query, in ns.

    ``latencies_ns`` come from ``timer`` (the host clock or a backend's device
    timer); when a device timer was used, ``host_latencies_ns`` keeps the host
    view of the same iterations.
    """

    latencies_ns: tuple[int, ...]
    warmup: int
    timer: str
    timer_resolution_ns: float
    host_latencies_ns: tuple[int, ...] | None = None
    harness_overhead_ns: float | None = None
    elapsed_ns: int | None = None
    #: Token-streaming workloads: per request, each token's ns offset from the request's start.
    token_offsets_ns: tuple[tuple[int, ...], ...] | None = None
    #: Per request, the tokens it generated where the step counted them (a server's usage);
    #: ``None`` for a request counted one token per mark.
    token_counts: tuple[int | None, ...] | None = None
    #: Reasoning models: per request, the index of the mark that carried the first answer
    #: token (``None``: the first mark). Absent when no request reasoned.
    answer_marks: tuple[int | None, ...] | None = None
    #: Wall clock (Unix ns) at the first timed iteration.
    started_unix_ns: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["latencies_ns"] = list(self.latencies_ns)
        if self.host_latencies_ns is not None:
            data["host_latencies_ns"] = list(self.host_latencies_ns)
        if self.token_offsets_ns is not None:
            data["token_offsets_ns"] = [list(marks) for marks in self.token_offsets_ns]
        if self.token_counts is not None:
            data["token_counts"] = list(self.token_counts)
        else:
            data.pop("token_counts")  # absent, as in records written before it existed
        if self.answer_marks is not None:
            data["answer_marks"] = list(self.answer_marks)
        else:
            data.pop("answer_marks")
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Measurement":
        host = data.get("host_latencies_ns")
        return cls(
            latencies_ns=tuple(int(v) for v in data["latencies_ns"]),
            warmup=int(data["warmup"]),
            timer=str(data["timer"]),
            timer_resolution_ns=float(data["timer_resolution_ns"]),
            host_latencies_ns=tuple(int(v) for v in host) if host is not None else None,
            harness_overhead_ns=data.get("harness_overhead_ns"),
            elapsed_ns=data.get("elapsed_ns"),
            token_offsets_ns=(tuple(tuple(int(v) for v in marks) for marks in data["token_offsets_ns"])
                              if data.get("token_offsets_ns") is not None else None),
            started_unix_ns=data.get("started_unix_ns"),
            token_counts=tuple(data["token_counts"]) if data.get("token_counts") is not None else None,
            answer_marks=tuple(data["answer_marks"]) if data.get("answer_marks") is not None else None,
        )


@dataclass
class Outcome:
    """What a worker reports for one benchmark: a measurement or the reason there is none."""

    status: str
    measurement: Measurement | None = None
    failure: dict[str, Any] | None = None
    reason: str | None = None
    unit: str | None = None
    work_per_step: float | None = None
    #: FLOPs of one step when the unit is not FLOP (``Workload.flops_per_step``), for plausibility.
    flops_per_step: float | None = None
    backend_version: str | None = None
    device_info: dict[str, Any] | None = None
    peak_device_memory_bytes: int | None = None
    prepare_s: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: How sampling stopped: mode, target, achieved CI, whether the target was reached.
    stopping: dict[str, Any] | None = None
    #: Scenario name, metric, validity and reason, and scenario-specific facts.
    scenario: dict[str, Any] | None = None
    #: Throughput the scenario defines itself (offline, server); else derived from the median.
    throughput: dict[str, Any] | None = None
    #: Deviation from the workload's reference output and the pass/fail verdict.
    parity: dict[str, Any] | None = None
    #: Joules, watts and joules per unit, or ``joules: None`` with the reason.
    energy: dict[str, Any] | None = None
    #: Host peak RSS, device peak memory and weight bytes, each with its source.
    memory: dict[str, Any] | None = None
    #: CPU cores busy during the scenario, and device utilisation where a meter reports it.
    utilisation: dict[str, Any] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    #: The environment of the machine that ran it, when that is not the run's own host
    #: (a fleet node: host facts plus its Ray node id). ``None``: the run's host.
    node: dict[str, Any] | None = None
    #: What else used the machine over the timed region (harness/engine/telemetry/interference.py).
    interference: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["measurement"] = self.measurement.to_dict() if self.measurement else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Outcome":
        data = dict(data)
        if data.get("measurement") is not None:
            data["measurement"] = Measurement.from_dict(data["measurement"])
        return cls(**data)

    @classmethod
    def failed(cls, cause: str, message: str, **extra: Any) -> "Outcome":
        """A failure with a machine-readable ``cause`` (one of :data:`CAUSES`)."""
        failure = {"cause": cause, "message": message}
        failure.update({k: v for k, v in extra.items() if v is not None})
        return cls(status=FAILED, failure=failure, reason=f"{cause}: {message}")


def failure_cause(exc: BaseException) -> str:
    """``out-of-memory`` for allocation failures (Python's or a runtime's), else ``error``."""
    if isinstance(exc, MemoryError):
        return "out-of-memory"
    text = str(exc).lower()
    if any(marker in text for marker in ("out of memory", "can't allocate memory", "bad_alloc",
                                         "failed to allocate")):
        return "out-of-memory"
    return "error"


def _find_device(devices: list[Any], device: str) -> Any | None:
    return next((d for d in devices if d.device == device), None)


def declared_unsupported(backend: Any, spec: BenchmarkSpec) -> str | None:
    """The reason the backend declares up front that it does not run this spec's workload and
    dtype on its device, or ``None``: a precision outside those it runs (``DeclaresPrecisions``,
    else the classic four), or its own ``DeclaresSupport`` answer."""
    runs = backend_precisions(backend)
    if spec.dtype not in runs:
        return refusal(backend.name, spec.dtype, runs)
    support = capability(backend, DeclaresSupport)
    return support.unsupported_reason(spec.workload, spec.dtype, spec.device) if support is not None else None


def backend_precisions(backend: Any) -> tuple[str, ...]:
    """The precisions ``backend`` runs: its declared list, else :data:`CLASSIC_PRECISIONS`."""
    declared = capability(backend, DeclaresPrecisions)
    return tuple(declared.precisions) if declared is not None else CLASSIC_PRECISIONS


def backend_meters(prepared: Prepared) -> list[Any]:
    """The energy meters the backend offers for its device (capability ``EnergyMetered``).

    Core never picks a meter by device name: only the backend knows that its
    ``CUDAExecutionProvider`` runs on ``cuda:0`` or that an endpoint's power
    is not this host's. A backend that offers none gets an energy of
    ``null`` with that reason.
    """
    metered = capability(prepared, EnergyMetered)
    return list(metered.energy_meters()) if metered is not None else []


def execute(spec: BenchmarkSpec, registry: Registry | None = None, *, timebase: Timebase = HOST,
            meters: Callable[[Prepared], list[Any]] = backend_meters,
            interference: Callable[[], InterferenceWatch] = InterferenceWatch) -> Outcome:
    """Run one benchmark to an :class:`Outcome`. Exceptions never escape.

    (A crash of the interpreter itself, a signal or an out-of-memory kill,
    cannot be caught here; the subprocess launcher turns those into outcomes.)
    """
    started_at = utc_now()
    outcome = _execute(spec, registry or Registry(), timebase, meters, interference)
    outcome.started_at = started_at
    outcome.finished_at = utc_now()
    return outcome


def _failed_from(exc: BaseException, prefix: str) -> Outcome:
    return Outcome.failed(failure_cause(exc), f"{prefix}{describe_exception(exc)}",
                          traceback=traceback.format_exc())


def _execute(spec: BenchmarkSpec, registry: Registry, timebase: Timebase,
             meters: Callable[[str], list[Any]], interference: Callable[[], InterferenceWatch]) -> Outcome:
    try:
        backend = registry.backend(spec.backend)
        workload = registry.workload(spec.workload, spec.params_dict)
        availability = backend.probe()
        if not isinstance(availability, Availability) or not availability.available:
            reason = (availability.reason if isinstance(availability, Availability)
                      else f"probe() returned {type(availability).__name__}, not an Availability") \
                or "backend unavailable"
            return Outcome(status=UNAVAILABLE, reason=reason)
        device = _find_device(list(backend.devices()), spec.device)
        if device is None:
            return Outcome(status=UNAVAILABLE, reason=f"device {spec.device!r} not found")
        if not device.available:
            return Outcome(status=UNAVAILABLE, reason=device.reason or "device unavailable")
        refused = declared_unsupported(backend, spec)
        if refused:
            return Outcome(status=UNSUPPORTED, reason=refused)
        scenario = registry.scenario(spec.scenario)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a record
        return _failed_from(exc, "")

    common = dict(
        unit=workload.unit,
        work_per_step=float(workload.work_per_step(spec.batch_size)),
        flops_per_step=workload.flops_per_step(spec.batch_size),
        backend_version=availability.version,
        device_info=device.to_dict(),
    )
    try:
        prepare_start = timebase.now()
        prepared = backend.prepare(workload, spec)
        prepare_s = (timebase.now() - prepare_start) / 1e9
        # A remote backend learns what stands behind its endpoint only now (device label, engine).
        remote = capability(prepared, RemoteIdentity)
        if remote is not None and remote.device_overrides:
            common["device_info"] = {**common["device_info"], **remote.device_overrides}
    except Unsupported as exc:
        return Outcome(status=UNSUPPORTED, reason=str(exc), **common)
    except Exception as exc:  # noqa: BLE001
        outcome = _failed_from(exc, "prepare failed: ")
        outcome.__dict__.update(common)
        return outcome
    try:
        overhead = harness_overhead_ns(timebase)
        # Warm up before the meters start, so energy, CPU time and their per-unit figures
        # cover exactly the measured queries. The runner is warm-up's one owner: sample() and
        # the scenarios never warm up themselves.
        warm_up(prepared, spec.stopping.warmup)
        watch = interference()
        cpu_before, wall_before = time.process_time(), time.monotonic()
        with measure_energy(meters(prepared)) as energy, watch:
            result: ScenarioResult = scenario.run(
                prepared, replace(spec.stopping, warmup=0), timebase, settings=spec.scenario_options_dict,
                server=spec.server, work_per_step=common["work_per_step"], unit=workload.unit,
            )
        cpu_after, wall_after = time.process_time(), time.monotonic()
        peak = prepared.peak_memory_bytes()
        details = dict(prepared.details)
        tolerance = capability(prepared, FailureTolerance)
        _account_failures(result, details, tolerance.max_failure_rate if tolerance is not None else 0.0)
        outputs = prepared.outputs()
    except Unsupported as exc:  # a scenario this backend cannot serve (e.g. overlapping queries)
        return Outcome(status=UNSUPPORTED, reason=str(exc), prepare_s=prepare_s, **common)
    except Exception as exc:  # noqa: BLE001
        outcome = _failed_from(exc, "step failed: ")
        outcome.__dict__.update(common, prepare_s=prepare_s)
        return outcome
    finally:
        try:
            prepared.close()
        except Exception:  # noqa: BLE001 - a failing close must not hide the measurement
            pass
    parity = check_parity(workload, spec, outputs)
    loaded = not scenario.samples_cover_metered_span
    steps = None if loaded else len(result.sampling.latencies_ns)
    energy_result = energy.result(steps * common["work_per_step"] if steps else None, workload.unit)
    if loaded and energy_result.get("joules") is not None:
        energy_result["per_unit_reason"] = f"{spec.scenario} runs cover every search trial; no per-unit figure"
    cpu_seconds = cpu_after - cpu_before
    wall = wall_after - wall_before
    stored = capability(prepared, StoredWeights)
    stored_weights = stored.stored_weight_bytes() if stored is not None else None
    memory = {
        **host_peak_memory(),
        "device_peak_bytes": peak,
        "device_peak_source": details.get("device_memory_source", "runtime allocator statistics")
        if peak is not None else "the runtime does not report device memory",
        # A remote endpoint's weights are the server's, not those of the workload's local shape.
        **({"weight_bytes": stored_weights[0], "weight_bytes_source": stored_weights[1]} if stored_weights else
           weight_bytes_of(workload, spec.dtype) if remote is None else
           {"weight_bytes": None, "weight_bytes_source": "unknown: the model runs behind a remote endpoint"}),
        **input_bytes_of(workload, spec, peak),
    }
    described = capability(workload, Described)
    if described is not None:
        details.setdefault("workload", dict(described.describe()))
    stored_kv = capability(prepared, StoredKvCache)
    model = model_facts(workload, spec, stored_weights,
                        stored_kv.stored_kv_bytes_per_token() if stored_kv is not None else None)
    if model is not None:
        details.setdefault("model", model)
    sampling = result.sampling
    measurement = Measurement(
        latencies_ns=tuple(sampling.latencies_ns),
        warmup=spec.stopping.warmup,
        timer=sampling.timer,
        timer_resolution_ns=sampling.timer_resolution_ns,
        host_latencies_ns=tuple(sampling.host_latencies_ns) if sampling.host_latencies_ns else None,
        harness_overhead_ns=overhead,
        elapsed_ns=sampling.elapsed_ns,
        started_unix_ns=sampling.started_unix_ns,
        token_offsets_ns=(tuple(tuple(marks) for marks in sampling.token_offsets_ns)
                          if sampling.token_offsets_ns is not None else None),
        token_counts=_token_counts(sampling.token_offsets_ns),
        answer_marks=_answer_marks(sampling.token_offsets_ns),
    )
    return Outcome(
        status=OK,
        measurement=measurement,
        peak_device_memory_bytes=peak,
        prepare_s=prepare_s,
        details=details,
        stopping={
            # Server and concurrent runs follow their load schedule; the CI rule does not apply.
            "mode": "schedule" if loaded else
                    "adaptive" if spec.stopping.adaptive else "fixed",
            **spec.stopping.to_dict(),
            "reason": sampling.stop_reason,
            "target_reached": sampling.target_reached,
            "achieved_ci": sampling.achieved_ci,
        },
        scenario={
            "name": spec.scenario,
            "metric": result.metric,
            "valid": result.valid,
            "validity_reason": result.validity_reason,
            **result.extra,
            **({"warnings": list(result.warnings)} if result.warnings else {}),
        },
        throughput=result.throughput,
        parity=parity,
        energy=energy_result,
        memory=memory,
        utilisation={
            "process_cpu_seconds": cpu_seconds,
            "wall_seconds": wall,
            "cpu_cores_busy": cpu_seconds / wall if wall > 0 else None,
            "source": "time.process_time() of the worker (all threads) around the scenario run",
            "device": next((m.get("utilisation") for m in energy_result.get("meters", [])
                            if m.get("utilisation") is not None), None),
        },
        interference=watch.result(device_throttle=_throttle_reasons(energy_result)),
        **common,
    )


def _throttle_reasons(energy: Mapping[str, Any]) -> list[str] | None:
    """Clock-throttle reasons a device meter saw during the timed region (NVML), if any."""
    reasons = [reason for meter in energy.get("meters", []) for reason in (meter.get("throttle_reasons") or [])]
    return sorted(set(reasons)) or None


def host_peak_memory() -> dict[str, Any]:
    """Peak resident memory from the worker's own accounting, read once at the end (no sampling).

    The kernel's high-water mark ``VmHWM`` of this process where /proc exists.
    Otherwise ``getrusage`` max RSS, which on Linux is not reset by ``exec``: a
    worker forked from a large driver would report the driver's peak. The max
    RSS of the worker's waited-for children is added where it has any.
    """
    hwm = vm_hwm_bytes()
    if hwm is not None:
        peak: dict[str, Any] = {
            "host_peak_rss_bytes": hwm,
            "host_peak_rss_source": "VmHWM of the worker (/proc/self/status, whole process lifetime)",
        }
    else:
        peak = {
            "host_peak_rss_bytes": peak_rss_bytes(),
            "host_peak_rss_source": "getrusage(RUSAGE_SELF).ru_maxrss of the worker (whole process lifetime)",
        }
    children = peak_rss_bytes("children")
    if children:
        peak["host_peak_rss_children_bytes"] = children
    return peak


def vm_hwm_bytes(status: str = "/proc/self/status") -> int | None:
    """The kernel's resident high-water mark of this process (``VmHWM``), in bytes."""
    try:
        with open(status, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_bytes(who: str = "self") -> int | None:
    """The OS's own max-RSS accounting for this process (KiB on Linux, bytes on macOS)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    target = resource.RUSAGE_SELF if who == "self" else resource.RUSAGE_CHILDREN
    peak = resource.getrusage(target).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _account_failures(result: Any, details: dict[str, Any], max_failure_rate: float) -> None:
    """Failed queries (remote backends) go into the details by cause; above the backend's
    allowed rate they make the result invalid. They are never timed."""
    failures = result.sampling.failures
    if not failures:
        return
    failed = sum(failures.values())
    total = failed + len(result.sampling.latencies_ns)
    details["request_failures"] = dict(failures)
    details["requests_failed"], details["requests_total"] = failed, total
    rate = failed / total
    if rate > max_failure_rate:
        causes = ", ".join(f"{cause}: {count}" for cause, count in sorted(failures.items()))
        result.valid = False
        result.validity_reason = (f"{failed} of {total} requests failed ({rate:.1%} > allowed "
                                  f"{max_failure_rate:.1%}; {causes})")


def input_bytes_of(workload: Any, spec: BenchmarkSpec, device_peak: int | None) -> dict[str, Any]:
    """One step's input bytes, only where a device peak is reported to be checked against them
    (harness/hardware/plausibility.py): a workload may have to build its inputs to count them."""
    if device_peak is None:
        return {"input_bytes": None}
    try:
        return {"input_bytes": int(workload.input_bytes(spec.batch_size, spec.dtype))}
    except Exception as exc:  # noqa: BLE001 - an unknown size is null, with the reason
        return {"input_bytes": None, "input_bytes_source": f"unknown ({describe_exception(exc)})"}


def model_facts(workload: Any, spec: BenchmarkSpec, stored_weights: tuple[int, str] | None,
                stored_kv: tuple[int, str] | None) -> dict[str, Any] | None:
    """A decoder's ``details.model``: parameters, weight bytes, KV-cache bytes per token and the
    bytes one decode step streams, which the roofline divides by. Decode streams what the
    runtime stored (the active share of the weights, for a sparse model; its own cache width),
    so the runtime's figures (``StoredWeights``, ``StoredKvCache``) replace the nominal ones
    where it offers them."""
    facts = capability(workload, ModelFacts)
    if facts is None:
        return None
    sparse = capability(workload, SparseActivation)
    nominal = facts.weight_bytes(spec.dtype)
    weights = stored_weights[0] if stored_weights else nominal
    parameters = facts.parameter_count()
    active = sparse.active_parameter_count() if sparse is not None else parameters
    step_bytes = facts.bytes_per_decode_step(spec.batch_size, spec.dtype) + (weights - nominal) * active / parameters
    model = {
        "parameters": parameters,
        "active_parameters": active,
        "weight_bytes": weights,
        "weight_bytes_source": stored_weights[1] if stored_weights else "nominal: parameters x bits per weight",
    }
    cache = capability(workload, KvCacheFacts)
    if cache is not None:
        nominal_kv = cache.kv_bytes_per_token(spec.dtype)
        kv = stored_kv[0] if stored_kv else nominal_kv
        generative = capability(workload, Generative)
        if generative is not None and kv != nominal_kv:
            context = generative.prompt_tokens + generative.new_tokens / 2  # the average over the generation
            step_bytes += spec.batch_size * context * (kv - nominal_kv)
        model["kv_bytes_per_token"] = kv
        model["kv_bytes_source"] = stored_kv[1] if stored_kv else f"every layer's cache tensors at {spec.dtype}"
    model["bytes_per_decode_step"] = step_bytes
    return model


def weight_bytes_of(workload: Any, dtype: str) -> dict[str, Any]:
    from harness.engine.cache import cached_weight_bytes

    try:
        value, source = cached_weight_bytes(workload, dtype)
    except Exception as exc:  # noqa: BLE001 - a size we cannot know is null, with the reason
        return {"weight_bytes": None, "weight_bytes_source": f"unknown ({describe_exception(exc)})"}
    return {"weight_bytes": value, "weight_bytes_source": source}


def check_parity(workload: Any, spec: BenchmarkSpec, outputs: list[Any] | None) -> dict[str, Any]:
    """Compare the last step's outputs with the workload's torch-CPU-float32 reference.

    Runs after the backend is closed, outside every timed region.
    """
    if outputs is None:
        return {"passed": None, "reason": "the backend exposes no outputs to check"}
    from harness.engine.cache import cached_reference

    try:
        reference, cache_hit = cached_reference(workload, spec.batch_size)
    except Exception as exc:  # noqa: BLE001 - a broken reference is reported, not fatal
        return {"passed": None, "reason": f"reference failed: {describe_exception(exc)}"}
    if reference is None:
        return {"passed": None, "reason": "the workload defines no reference output"}
    return {**compare(outputs, reference, spec.dtype), "reference_cached": cache_hit}
