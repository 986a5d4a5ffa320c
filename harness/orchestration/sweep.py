"""Turn a request (backends x workloads x dtypes x batch sizes) into benchmarks, and run them.

:func:`plan` validates everything before anything runs: unknown names, bad
parameters and bad dtypes are :class:`UserError`\\ s, and so are batch sizes and
parameters beyond their documented caps or whose inputs and weights (the
workload's ``materialised_bytes``) exceed the host's memory. :func:`run_sweep` runs
the planned benchmarks one at a time through a launcher and writes each
record as soon as it finishes, so an interruption loses nothing finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Protocol, Sequence

from harness.contract import options as options_module
from harness.contract.capabilities import (ChecksOptions, DeclaresOptions, DeclaresSupport, LoadDefaults,
                                          RequiresOptions, SweepMembership, capability)
from harness.contract.errors import UserError
from harness.contract.interface import KNOWN_DTYPES, Workload
from harness.contract.limits import MAX_BATCH_SIZE
from harness.contract.load import load_default_problem
from harness.engine.plugins import Registry
from harness.engine.scenarios import CONCURRENT, SINGLE_STREAM, ServerSettings
from harness.engine.spec import DEFAULT_TIMEOUT_S, BenchmarkSpec
from harness.engine.telemetry.environment import default_threads
from harness.engine.timing import Stopping
from harness.orchestration.launchers import BatchLauncher, Launcher
from harness.results.store import RunStore

#: What no host can hold: the 48-bit virtual address space of 64-bit CPUs (256 TiB). A fleet
#: plan's ceiling, since the driver's memory says nothing of the nodes'.
ADDRESSABLE_BYTES = 1 << 48


def physical_memory_bytes() -> int:
    """This host's physical memory: the most a benchmark planned here may materialise."""
    import psutil

    return psutil.virtual_memory().total


@dataclass(frozen=True)
class SweepRequest:
    """What the user asked for. Empty ``backends``/``workloads`` mean "all available";
    empty ``batch_sizes`` mean 1 (and 1, 8, 32 for the offline scenario)."""

    backends: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    workloads: tuple[str, ...] = ()
    params: tuple[tuple[str, Any], ...] = ()
    dtypes: tuple[str, ...] = ("float32",)
    batch_sizes: tuple[int, ...] = ()
    scenarios: tuple[str, ...] = (SINGLE_STREAM,)
    stopping: Stopping = field(default_factory=Stopping)
    server: ServerSettings = field(default_factory=ServerSettings)
    #: Load points: one benchmark per point for every scenario that takes server settings
    #: (``--concurrency 1 4 16`` or ``--qps 2 4``: a sweep from one user to saturation). Empty:
    #: ``server`` alone. A point a scenario's identity does not distinguish runs once.
    server_points: tuple[ServerSettings, ...] = ()
    #: Threads per benchmark; ``None`` means every usable core.
    threads: int | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_limit_bytes: int | None = None
    #: Per-backend options (``{"torch": {"graph": ["eager", "compile"]}}``); a list
    #: value sweeps the option. See harness/contract/options.py.
    backend_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Per-scenario settings (``{"burst": {"size": 8}}``), checked against each scenario's
    #: ``SETTINGS``. See harness.contract.interface.Scenario.
    scenario_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Dotted names (``server.latency_slo_s``, ``stopping.max_duration_s``) of the settings
    #: the user gave, even where the value equals the general default (a flag or config key):
    #: a backend's load defaults (capability ``LoadDefaults``) never replace them. A value
    #: that differs from the general default counts as given without being named here.
    explicit: frozenset[str] = frozenset()
    #: ``"auto"``: the concurrent scenario's load points are chosen as the run goes, from one
    #: client to saturation (harness/orchestration/autosweep.py); ``None``: the points given.
    sweep: str | None = None

    def loads(self) -> tuple[ServerSettings, ...]:
        """The server settings each server-driven scenario runs at: the points, else ``server``."""
        return self.server_points or (self.server,)

    def settings(self) -> dict[str, Any]:
        return {
            "backends": list(self.backends),
            "devices": list(self.devices),
            "workloads": list(self.workloads),
            "params": dict(self.params),
            "dtypes": list(self.dtypes),
            "batch_sizes": list(self.batch_sizes),
            "scenarios": list(self.scenarios),
            "stopping": self.stopping.to_dict(),
            "server": self.server.to_dict(),
            "server_points": [point.to_dict() for point in self.server_points],
            "threads": self.threads,
            "timeout_s": self.timeout_s,
            "memory_limit_bytes": self.memory_limit_bytes,
            "backend_options": {k: dict(v) for k, v in self.backend_options.items()},
            "scenario_options": {k: dict(v) for k, v in self.scenario_options.items()},
            "explicit": sorted(self.explicit),
            "sweep": self.sweep,
        }


@dataclass
class Plan:
    specs: list[BenchmarkSpec]
    notes: list[str] = field(default_factory=list)
    #: Identity of every device the plan uses (the manifest's accelerator collector).
    devices: list[dict[str, Any]] = field(default_factory=list)


def parse_param_assignments(items: Sequence[str]) -> tuple[tuple[str, Any], ...]:
    """``["size=512", "mlp.hidden=256"]`` to pairs; :class:`UserError` on a malformed item.

    A key given more than once becomes a list, which sweeps the parameter.
    """
    merged: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise UserError(f"--param {item!r}: expected KEY=VALUE or WORKLOAD.KEY=VALUE")
        if key in merged:
            previous = merged[key]
            merged[key] = (previous if isinstance(previous, list) else [previous]) + [value]
        else:
            merged[key] = value
    return tuple(merged.items())


def scenario_settings(request: SweepRequest, registry: Registry) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Each requested scenario and its validated settings (defaults dropped), after its own check.

    Raises :class:`UserError` for an unknown or broken scenario, a setting it does not
    declare, or settings given for a scenario the request does not run.
    """
    unused = sorted(set(request.scenario_options) - set(request.scenarios))
    if unused:
        raise UserError(f"scenario settings for {unused[0]!r}, which this run does not include "
                        f"(add -s {unused[0]})")
    settings: dict[str, tuple[Any, dict[str, Any]]] = {}
    for name in dict.fromkeys(request.scenarios):
        try:
            scenario = registry.scenario(name)
        except RuntimeError as exc:
            raise UserError(f"scenario {name!r} cannot be used: {exc}") from None
        values = options_module.validate(name, scenario.SETTINGS, request.scenario_options.get(name, {}),
                                         noun="scenario setting")
        for point in request.loads():
            scenario.check(values, point)
        settings[name] = (scenario, values)
    return settings


def _check_request(request: SweepRequest,
                   registry: Registry | None = None) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Range checks the type system cannot express. Messages name the setting.
    Returns each scenario with its validated settings (:func:`scenario_settings`)."""
    for dtype in request.dtypes:
        if dtype not in KNOWN_DTYPES:
            raise UserError(f"unknown dtype {dtype!r} (allowed: {', '.join(KNOWN_DTYPES)})")
    for size in request.batch_sizes:
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise UserError(f"batch size {size!r} must be an integer >= 1")
        if size > MAX_BATCH_SIZE:
            raise UserError(f"batch size {size!r} must be <= {MAX_BATCH_SIZE}")
    if request.sweep not in (None, "auto"):
        raise UserError(f"sweep {request.sweep!r}: allowed: auto")
    if request.sweep == "auto":
        if CONCURRENT not in request.scenarios:
            raise UserError("--sweep auto sweeps the concurrent scenario's clients: add -s concurrent")
        if len({point.concurrency for point in request.loads()}) > 1 or request.server.find_max_concurrency:
            raise UserError("--sweep auto chooses the concurrency points itself: drop --concurrency lists and "
                            "--find-max-concurrency")
    stopping = request.stopping
    checks = [
        ("warmup", stopping.warmup, 0),
        ("min_iterations", stopping.min_iterations, 1),
        ("min_duration_s", stopping.min_duration_s, 0),
        ("max_duration_s", stopping.max_duration_s, 0),
        *(("min_queries", point.min_queries, 1) for point in request.loads()),
    ]
    if stopping.iterations is not None:
        checks.append(("iterations", stopping.iterations, 1))
    for name, value, minimum in checks:
        if value < minimum:
            raise UserError(f"{name} {value} must be >= {minimum}")
    if not 0 < stopping.target_ci < 1:
        raise UserError(f"target_ci {stopping.target_ci} must be between 0 and 1 (e.g. 0.02 for 2%)")
    if stopping.max_duration_s < stopping.min_duration_s:
        raise UserError(
            f"max_duration_s {stopping.max_duration_s} must be >= min_duration_s {stopping.min_duration_s}"
        )
    if request.threads is not None and request.threads < 1:
        raise UserError(f"threads {request.threads} must be >= 1")
    if request.timeout_s <= 0:
        raise UserError(f"timeout {request.timeout_s} must be > 0 seconds")
    if request.memory_limit_bytes is not None and request.memory_limit_bytes <= 0:
        raise UserError(f"memory limit {request.memory_limit_bytes} must be > 0 bytes")
    return scenario_settings(request, registry or Registry())


def _workload_params(
    registry: Registry, workloads: list[str], assignments: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Route ``key=value`` to every workload that declares ``key``; ``w.key`` to ``w`` only."""
    per_workload: dict[str, dict[str, Any]] = {w: {} for w in workloads}
    for key, value in assignments.items():
        scope, dot, name = key.rpartition(".")
        if dot:
            if scope not in per_workload:
                raise UserError(
                    f"--param {key}: workload {scope!r} is not in this run "
                    f"(running: {', '.join(workloads)})"
                )
            per_workload[scope][name] = value
            continue
        takers = [w for w in workloads if any(p.name == key for p in registry.workload_class(w).params)]
        if not takers:
            declared = sorted({p.name for w in workloads for p in registry.workload_class(w).params})
            raise UserError(
                f"--param {key}: no selected workload has this parameter "
                f"(parameters: {', '.join(declared) or 'none'})"
            )
        for w in takers:
            per_workload[w][key] = value
    return per_workload


def oversize_reason(workload: Workload, batch_size: int, dtype: str, limit_bytes: int,
                    limit_name: str) -> str | None:
    """Why ``workload`` cannot run at ``batch_size``: its own estimate of the bytes it
    materialises (inputs, outputs, weights) exceeds ``limit_bytes``. ``None`` when it fits."""
    from harness.contract.units import format_bytes

    needed = workload.materialised_bytes(batch_size, dtype)
    if needed is None or needed <= limit_bytes:
        return None
    params = ", ".join(f"{k}={v}" for k, v in workload.values.items()) or "no parameters"
    return (f"workload {workload.name!r} ({params}) at batch size {batch_size} in {dtype} needs at least "
            f"{format_bytes(needed)} for its inputs, outputs and weights, more than {limit_name} "
            f"({format_bytes(limit_bytes)})")


_LOAD_SECTIONS = {"stopping": Stopping, "server": ServerSettings}


def with_load_defaults(stopping: Stopping, server: ServerSettings | None, defaults: Mapping[str, Any],
                       explicit: frozenset[str] = frozenset()) -> tuple[Stopping, ServerSettings | None]:
    """``stopping`` and ``server`` with a backend's load defaults in every field the user did
    not set: neither named in ``explicit`` nor changed from the general default."""
    from dataclasses import fields, replace

    current = {"stopping": stopping, "server": server}
    changes: dict[str, dict[str, Any]] = {"stopping": {}, "server": {}}
    for key, value in defaults.items():
        section, _, name = key.partition(".")
        settings = current[section]
        if settings is None or key in explicit:
            continue
        general = {f.name: f.default for f in fields(_LOAD_SECTIONS[section])}[name]
        if getattr(settings, name) == general:
            changes[section][name] = value
    stopping = replace(stopping, **changes["stopping"])
    if changes["stopping"].get("max_duration_s", stopping.max_duration_s) < stopping.min_duration_s:
        stopping = replace(stopping, max_duration_s=stopping.min_duration_s)
    return stopping, (replace(server, **changes["server"]) if server is not None else None)


def backend_load_defaults(registry: Registry, backend: str) -> tuple[Mapping[str, Any], str | None]:
    """The load defaults ``backend`` declares ({} without the capability), and why they are
    ignored when they are malformed (``None`` when they are not)."""
    try:
        declared = capability(registry.backend(backend), LoadDefaults)
    except Exception:  # noqa: BLE001 - a backend that cannot load fails in its worker, with the cause
        return {}, None
    if declared is None:
        return {}, None
    from dataclasses import fields

    problem = load_default_problem(declared.load_defaults,
                                   {name: {f.name for f in fields(kind)} for name, kind in _LOAD_SECTIONS.items()})
    if problem is not None:
        return {}, f"backend {backend!r}: {problem}; its load defaults are ignored"
    return declared.load_defaults, None


def _in_default_sweep(registry: Registry, name: str) -> bool:
    """Backends that need the user's input (an endpoint URL) say ``default_sweep = False``."""
    try:
        membership = capability(registry.backend(name), SweepMembership)
        return membership is None or bool(membership.default_sweep)
    except Exception:  # noqa: BLE001 - a broken or remote-only plugin is listed, and reported, as usual
        return True


def backend_option_sets(registry: Registry, backend: str, device: str,
                        values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The validated, default-free option sets one backend runs on one device.

    A list value sweeps; sets that normalize to the same options run once.
    """
    instance = registry.backend(backend)
    requires = capability(instance, RequiresOptions)
    required = [key for key in (requires.required_options if requires else ()) if key not in (values or {})]
    if required:
        raise UserError(f"backend {backend} needs " + ", ".join(f"-O {backend}.{key}=..." for key in required)
                        + " (see bakeoff backends --options)")
    if not values:
        return [{}]
    declares = capability(instance, DeclaresOptions)
    declared = declares.OPTIONS if declares is not None else {}
    checker = capability(instance, ChecksOptions)
    sets: list[dict[str, Any]] = []
    for variant in options_module.variants(values):
        normalized = options_module.validate(backend, declared, variant)
        if normalized and checker is not None:
            try:
                checker.check_options(device, normalized)
            except ValueError as exc:
                raise UserError(f"backend option {backend} on {device}: {exc}") from None
        if normalized not in sets:
            sets.append(normalized)
    return sets


def plan(request: SweepRequest, registry: Registry | None = None,
         backend_rows: Mapping[str, list[Any]] | None = None) -> Plan:
    """Validate a request and expand it into benchmark specs.

    ``backend_rows`` replaces this machine's backend listing with another's, e.g.
    the union of a Ray cluster's nodes (harness/orchestration/fleet.py): a fleet is planned
    from what its nodes can run, not from what the driver can.
    """
    registry = registry or Registry()
    scenarios = _check_request(request, registry)
    notes: list[str] = []

    # Backends and their devices.
    explicit_backends = bool(request.backends)
    known_backends = sorted(backend_rows) if backend_rows is not None else registry.backend_names()
    backend_names = list(dict.fromkeys(request.backends)) or [
        name for name in known_backends if _in_default_sweep(registry, name)]
    for name in backend_names:
        if backend_rows is not None and name not in backend_rows:
            raise UserError(f"unknown backend {name!r} (the cluster's nodes have: {', '.join(known_backends)})")
        if backend_rows is None and name not in registry.backend_entries:
            registry.backend(name)  # raises the UserError naming the known backends
    targets: list[tuple[str, str]] = []
    device_facts: list[dict[str, Any]] = []
    seen_devices: set[str] = set()
    for name in backend_names:
        rows = backend_rows[name] if backend_rows is not None else registry.backend_status(name)
        seen_devices.update(r.device for r in rows if r.device)
        usable = [r for r in rows if r.available and r.device]
        if request.devices:
            usable = [r for r in usable if r.device in request.devices]
        if not usable and explicit_backends:
            reasons = "; ".join(r.reason or "unavailable" for r in rows if not r.available)
            notes.append(f"backend {name!r} skipped: {reasons or 'no matching device'}")
        targets.extend((name, r.device) for r in usable)
        device_facts.extend(r.to_dict() for r in usable)
    for device in request.devices:
        if device not in seen_devices:
            raise UserError(
                f"unknown device {device!r} (devices of the selected backends: "
                f"{', '.join(sorted(seen_devices)) or 'none'})"
            )

    # Workloads and their parameters.
    workload_names = list(dict.fromkeys(request.workloads))
    if workload_names:
        for name in workload_names:
            try:
                registry.workload_class(name)
            except RuntimeError as exc:
                raise UserError(f"workload {name!r} is unavailable: {exc}") from None
    else:
        for name in registry.workload_names():
            try:
                if registry.workload_class(name).default_sweep:
                    workload_names.append(name)
            except RuntimeError as exc:
                notes.append(f"workload {name!r} skipped: {exc}")
    params = _workload_params(registry, workload_names, dict(request.params))
    # A list value sweeps the parameter (``-p size=256 -p size=512``, or ``size = [256, 512]`` in a config).
    resolved: dict[str, list[dict[str, Any]]] = {}
    instances: list[Workload] = []
    for name in workload_names:
        resolved[name] = []
        for variant in options_module.variants(params[name]):
            instance = registry.workload(name, variant)
            if instance.values not in resolved[name]:
                resolved[name].append(instance.values)
                instances.append(instance)

    for name in request.backend_options:
        if name not in backend_names:
            raise UserError(f"backend option {name}.*: backend {name!r} is not in this run "
                            f"(running: {', '.join(backend_names)})")
    option_sets = {
        (backend, device): backend_option_sets(registry, backend, device, request.backend_options.get(backend, {}))
        for backend, device in targets
    }

    if not targets:
        detail = "; ".join(notes) if notes else "no backend is available"
        raise UserError(f"nothing to run: {detail} (see `bakeoff backends`)")

    # Thread counts are always explicit in the spec, so records say what ran.
    threads = request.threads or default_threads()
    def batch_sizes(scenario: str) -> tuple[int, ...]:
        return request.batch_sizes or scenarios[scenario][0].default_batch_sizes

    # What cannot be materialised fails here, in one line, not later inside a backend's prepare.
    # A batch size the user named is an error, and so is a workload that fits at none; a
    # default batch size that does not fit (offline's 32) is skipped with a note.
    limit = ((ADDRESSABLE_BYTES, "addressable memory") if backend_rows is not None
             else (physical_memory_bytes(), "this host's physical memory"))
    all_batch_sizes = sorted({size for scenario in request.scenarios for size in batch_sizes(scenario)})
    oversized: list[tuple[str, dict[str, Any], str, int]] = []
    for instance in instances:
        for dtype in request.dtypes:
            for size in all_batch_sizes:
                reason = oversize_reason(instance, size, dtype, *limit)
                if reason is not None and (request.batch_sizes or size == all_batch_sizes[0]):
                    raise UserError(f"{reason}; lower the batch size or the parameters")
                if reason is not None:
                    notes.append(f"skipped: {reason}")
                    oversized.append((instance.name, instance.values, dtype, size))

    # A backend whose steps are serving requests declares defaults that fit their latencies.
    load_defaults: dict[str, Mapping[str, Any]] = {}
    for backend in dict.fromkeys(name for name, _ in targets):
        load_defaults[backend], problem = backend_load_defaults(registry, backend)
        if problem:
            notes.append(problem)

    def settings_for(backend: str, scenario: str, load: ServerSettings) -> tuple[Stopping, ServerSettings | None]:
        server = load if scenarios[scenario][0].uses_server_settings else None
        if request.sweep == "auto" and scenario == CONCURRENT:  # the first point; the run decides the rest
            server = replace(server, concurrency=1)
        return with_load_defaults(request.stopping, server, load_defaults[backend], request.explicit)

    specs = [
        BenchmarkSpec.create(
            backend=backend,
            device=device,
            workload=workload,
            params=values,
            dtype=dtype,
            batch_size=batch_size,
            scenario=scenario,
            stopping=settings_for(backend, scenario, load)[0],
            server=settings_for(backend, scenario, load)[1],
            scenario_options=scenarios[scenario][1],
            threads=threads,
            timeout_s=request.timeout_s,
            memory_limit_bytes=request.memory_limit_bytes,
            options=options,
        )
        for backend, device in targets
        for options in option_sets[(backend, device)]
        for workload in workload_names
        for values in resolved[workload]
        for scenario in request.scenarios
        for load in (request.loads() if scenarios[scenario][0].uses_server_settings else (request.server,))
        for dtype in request.dtypes
        for batch_size in batch_sizes(scenario)
        if (workload, values, dtype, batch_size) not in oversized
    ]
    # A load point a scenario's identity does not tell apart (a --qps point of the concurrent
    # scenario) would run the same benchmark twice: once is enough.
    specs = list({spec.key(): spec for spec in specs}.values())
    if not request.workloads and backend_rows is None:
        specs = _drop_declared_workloads(registry, specs, notes)
    return Plan(specs=specs, notes=notes, devices=device_facts)


def _drop_declared_workloads(registry: Registry, specs: list[BenchmarkSpec], notes: list[str]) -> list[BenchmarkSpec]:
    """In a run that names no workloads, leave out the workloads a backend declares it does not
    run at all (``DeclaresSupport``: llama-cpp runs only ``llm``), with one note per backend, so
    the default bake-off is not a page of ``unsupported`` rows. Named with ``-w``, they are
    still recorded with the backend's reason."""
    kept, dropped = [], {}
    for spec in specs:
        try:
            support = capability(registry.backend(spec.backend), DeclaresSupport)
            reason = support.unsupported_reason(spec.workload, spec.dtype, spec.device) if support else None
        except Exception:  # noqa: BLE001 - a broken declaration is the worker's to record
            reason = None
        if reason is None:
            kept.append(spec)
        else:
            dropped.setdefault(spec.backend, set()).add(spec.workload)
    for backend, workloads in sorted(dropped.items()):
        notes.append(f"{backend} declares it does not run {', '.join(sorted(workloads))}: left out of this "
                     f"run (name a workload with -w to record the reason)")
    return kept


class SweepObserver(Protocol):
    """Progress callbacks; the CLI draws a rich progress bar with them."""

    def started(self, index: int, total: int, spec: BenchmarkSpec) -> None: ...

    def finished(self, index: int, total: int, spec: BenchmarkSpec, record: dict[str, Any]) -> None: ...


class SilentObserver:
    def started(self, index: int, total: int, spec: BenchmarkSpec) -> None:
        pass

    def finished(self, index: int, total: int, spec: BenchmarkSpec, record: dict[str, Any]) -> None:
        pass


def run_sweep(
    specs: Sequence[BenchmarkSpec],
    launcher: Launcher | BatchLauncher,
    store: RunStore,
    observer: SweepObserver | None = None,
    grow: Any = None,
) -> list[dict[str, Any]]:
    """Run every spec, writing each record as it finishes.

    ``grow`` (an :class:`~harness.orchestration.autosweep.AutoSweep`) may add benchmarks as
    records come in: ``grow.after(spec, record)`` returns the specs to run next, which join
    the run's plan and run after the others.

    On Ctrl-C the current worker is killed, the manifest is marked
    ``interrupted`` and ``KeyboardInterrupt`` propagates; finished records stay
    and ``bakeoff run --resume`` runs only what is missing.
    """
    from harness.engine.runner import UNSUPPORTED, Outcome, declared_unsupported, utc_now

    observer = observer or SilentObserver()
    registry = Registry()
    records: list[dict[str, Any]] = []
    specs = list(specs)
    lock = store.lock()  # the workers inherit it: a run is in use while any of them lives

    def refusal(spec: BenchmarkSpec) -> Outcome | None:
        refused = _declared_unsupported(registry, spec, declared_unsupported)
        if not refused:
            return None
        now = utc_now()  # declared up front: no worker, nothing prepared
        try:  # the unit its records would have had, so a table of one workload keeps one unit
            unit = registry.workload_class(spec.workload).unit
        except Exception:  # noqa: BLE001 - a workload plugin that cannot load names no unit
            unit = None
        return Outcome(status=UNSUPPORTED, reason=refused, unit=unit, started_at=now, finished_at=now)

    def finished(spec: BenchmarkSpec, outcome: Outcome) -> None:
        record = store.write(spec, outcome)
        records.append(record)
        grown = grow.after(spec, record) if grow is not None else []
        if grown:
            store.add_planned(grown)
            specs.extend(grown)
        observer.finished(len(records) - 1, len(specs), spec, record)

    try:
        if isinstance(launcher, BatchLauncher):  # many at once (a fleet), records in completion order
            launchable = []
            for spec in specs:
                outcome = refusal(spec)
                if outcome is None:
                    launchable.append(spec)
                else:
                    finished(spec, outcome)
            launcher.launch_all(launchable, finished, keep_alive=(lock,))
        else:
            index = 0
            while index < len(specs):  # ``grow`` may lengthen the list as records come in
                spec = specs[index]
                observer.started(index, len(specs), spec)
                finished(spec, refusal(spec) or launcher.launch(spec, keep_alive=(lock,)))
                index += 1
    except KeyboardInterrupt:
        store.finish("interrupted")
        raise
    store.finish("complete")
    return records


def _declared_unsupported(registry: Registry, spec: BenchmarkSpec, declared) -> str | None:
    """The backend's up-front refusal of ``spec``, or ``None`` (also for a backend that cannot
    load or whose declaration raises: the worker then records what is really wrong)."""
    try:
        return declared(registry.backend(spec.backend), spec)
    except Exception:  # noqa: BLE001 - a broken plugin fails in its worker, with the cause recorded
        return None


#: How long ``--resume`` waits for a killed run's processes to exit before refusing.
RESUME_LOCK_WAIT_S = 5.0


def resume(store: RunStore) -> list[BenchmarkSpec]:
    """Prepare an interrupted run for resumption; returns the specs still missing.

    Refuses (:class:`ResultsError`) while any process of the run still lives, such as
    a worker of a killed driver: its benchmark would run beside the resumed one.
    """
    store.lock(wait_s=RESUME_LOCK_WAIT_S)
    store.remove_stale_temporaries()
    done = store.completed_keys()
    missing = [spec for spec in store.planned_specs() if spec.key() not in done]
    store.mark_resumed()
    return missing
