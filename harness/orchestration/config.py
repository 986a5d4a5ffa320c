"""Sweep configs: ``bakeoff run --config sweep.toml``.

A config describes the matrix (backends x workloads x dtypes x batch sizes x
scenarios) and the stopping targets. It is validated completely before
anything runs; every error is one line naming the file, the key, the bad
value and what is allowed. The format is documented in
``docs/sweep.example.toml``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from harness.contract.errors import UserError
from harness.contract.precisions import canonical_dtype
from harness.contract.limits import MAX_BATCH_SIZE, MAX_CONCURRENCY, MAX_QUERIES, MAX_SEED, MAX_STEPS, MAX_THREADS
from harness.contract.units import parse_bytes
from harness.engine.scenarios import WAKE_UPS, ServerSettings
from harness.engine.timing import Stopping
from harness.files.tomlfile import read_toml
from harness.orchestration.sweep import SweepRequest

CONFIG_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Field:
    """One allowed key: its expected kind and a range check with a readable rule."""

    #: "int", "number", "bool", "str", "list[str]", "list[int]", "size", or "X|list[X]": a value
    #: or a non-empty list of them (a list sweeps it: one benchmark per value)
    kind: str
    check: Callable[[Any], bool] | None = None
    rule: str = ""
    #: The largest value allowed (a documented cap); ``None``: no cap.
    maximum: int | None = None


def _at_least(minimum: float) -> Callable[[Any], bool]:
    return lambda v: v >= minimum


POSITIVE = (_at_least(1), ">= 1")
NON_NEGATIVE = (_at_least(0), ">= 0")
GREATER_THAN_ZERO = (lambda v: v > 0, "> 0")

SECTIONS: dict[str, dict[str, Field]] = {
    "sweep": {
        "backends": Field("list[str]"),
        "devices": Field("list[str]"),
        "workloads": Field("list[str]"),
        "dtypes": Field("list[str]"),
        "batch_sizes": Field("list[int]", *POSITIVE, maximum=MAX_BATCH_SIZE),
        "scenarios": Field("list[str]"),
        "threads": Field("int", *POSITIVE, maximum=MAX_THREADS),
        "timeout_s": Field("number", *GREATER_THAN_ZERO),
        "memory_limit": Field("size", *GREATER_THAN_ZERO),
        "sweep": Field("str", lambda v: v == "auto", '"auto"'),
    },
    "stopping": {
        "warmup": Field("int", *NON_NEGATIVE, maximum=MAX_STEPS),
        "iterations": Field("int", *POSITIVE, maximum=MAX_STEPS),
        "min_iterations": Field("int", *POSITIVE, maximum=MAX_STEPS),
        "min_duration_s": Field("number", *NON_NEGATIVE),
        "max_duration_s": Field("number", *GREATER_THAN_ZERO),
        "target_ci": Field("number", lambda v: 0 < v < 1, "between 0 and 1 (0.02 means 2%)"),
    },
    "server": {
        "target_qps": Field("number|list[number]", *GREATER_THAN_ZERO),
        "latency_slo_ms": Field("number", *GREATER_THAN_ZERO),
        "min_queries": Field("int", *POSITIVE, maximum=MAX_QUERIES),
        "min_duration_s": Field("number", *NON_NEGATIVE),
        "find_max_qps": Field("bool"),
        "seed": Field("int", *NON_NEGATIVE, maximum=MAX_SEED),
        "ttft_bound_ms": Field("number", *GREATER_THAN_ZERO),
        "tpot_bound_ms": Field("number", *GREATER_THAN_ZERO),
        "concurrency": Field("int|list[int]", *POSITIVE, maximum=MAX_CONCURRENCY),
        "find_max_concurrency": Field("bool"),
        "arrival": Field("str", lambda v: v in ("poisson", "gamma", "constant", "trace"),
                         "poisson, gamma, constant or trace"),
        "arrival_trace": Field("str"),
        "burstiness": Field("number", *GREATER_THAN_ZERO),
        "ramp_up_s": Field("number", *NON_NEGATIVE),
        "wake_up": Field("str", lambda v: v in WAKE_UPS, " or ".join(WAKE_UPS)),
    },
}
TOP_LEVEL = {"schema_version", "sweep", "stopping", "server", "workload", "backend", "scenario"}


def _type_ok(kind: str, value: Any) -> bool:
    if "|" in kind:
        single = kind.split("|")[0]
        return _type_ok(single, value) or (isinstance(value, list) and bool(value)
                                            and all(_type_ok(single, v) for v in value))
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "list[int]":
        return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if kind == "size":
        return isinstance(value, (int, str)) and not isinstance(value, bool)
    raise AssertionError(kind)


_KIND_WORDS = {"int": "an integer", "number": "a number", "bool": "true or false", "str": "a string",
               "list[str]": "a list of strings", "list[int]": "a list of integers",
               "size": "a size such as \"4GiB\" or a byte count",
               "number|list[number]": "a number or a list of numbers",
               "int|list[int]": "an integer or a list of integers"}


def _validate_section(path: Path, section: str, table: Any) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise UserError(f"{path}: [{section}] must be a table, got {type(table).__name__}")
    fields = SECTIONS[section]
    values: dict[str, Any] = {}
    for key, value in table.items():
        where = f"{path}: [{section}] {key}"
        if key not in fields:
            raise UserError(f"{path}: unknown key {key!r} in [{section}] (allowed: {', '.join(fields)})")
        spec = fields[key]
        if not _type_ok(spec.kind, value):
            raise UserError(f"{where} = {value!r}: must be {_KIND_WORDS[spec.kind]}")
        if spec.kind == "size":
            try:
                value = parse_bytes(value)
            except ValueError as exc:
                raise UserError(f"{where}: {exc}") from None
        items = value if isinstance(value, list) else [value]
        if spec.check is not None:
            for item in items:
                if not spec.check(item):
                    raise UserError(f"{where} = {item!r}: must be {spec.rule}")
        if spec.maximum is not None:
            for item in items:
                if item > spec.maximum:
                    raise UserError(f"{where} = {item!r}: must be <= {spec.maximum}")
        values[key] = value
    return values


def load_config(path: Path | str) -> SweepRequest:
    """Parse and validate a sweep config into a :class:`SweepRequest`."""
    path = Path(path)
    raw = read_toml(path, "config")
    for key in raw:
        if key not in TOP_LEVEL:
            raise UserError(f"{path}: unknown key {key!r} at top level (allowed: {', '.join(sorted(TOP_LEVEL))})")
    version = raw.get("schema_version", CONFIG_SCHEMA_VERSION)
    if version != CONFIG_SCHEMA_VERSION or isinstance(version, bool):
        raise UserError(f"{path}: schema_version = {version!r}: this bakeoff reads config schema {CONFIG_SCHEMA_VERSION}")

    sweep = _validate_section(path, "sweep", raw.get("sweep", {}))
    stopping_values = _validate_section(path, "stopping", raw.get("stopping", {}))
    server_values = _validate_section(path, "server", raw.get("server", {}))

    params: list[tuple[str, Any]] = []
    workload_tables = raw.get("workload", {})
    if not isinstance(workload_tables, dict):
        raise UserError(f"{path}: [workload] must hold tables such as [workload.gemm]")
    for workload, table in workload_tables.items():
        if not isinstance(table, dict):
            raise UserError(f"{path}: workload.{workload} must be a table of parameters, got {table!r}")
        params.extend((f"{workload}.{key}", value) for key, value in table.items())

    backend_tables = raw.get("backend", {})
    if not isinstance(backend_tables, dict) or not all(isinstance(t, dict) for t in backend_tables.values()):
        raise UserError(f"{path}: [backend] must hold tables of options such as [backend.torch]")
    scenario_tables = raw.get("scenario", {})
    if not isinstance(scenario_tables, dict) or not all(isinstance(t, dict) for t in scenario_tables.values()):
        raise UserError(f"{path}: [scenario] must hold tables of settings such as [scenario.burst]")

    # Every key given counts as the user's, so a backend's load defaults do not replace it.
    server_names = {"latency_slo_ms": "latency_slo_s", "ttft_bound_ms": "ttft_bound_s", "tpot_bound_ms": "tpot_bound_s"}
    explicit = frozenset({f"stopping.{key}" for key in stopping_values}
                         | {f"server.{server_names.get(key, key)}" for key in server_values})
    iterations = stopping_values.pop("iterations", None)
    stopping = Stopping(**stopping_values)
    if iterations is not None:
        stopping = stopping.with_fixed_iterations(iterations)
        if "min_duration_s" in stopping_values:
            stopping = Stopping(**{**stopping.to_dict(), "min_duration_s": stopping_values["min_duration_s"]})
    # A list of rates or of concurrencies sweeps it: one load point per value (their product).
    qps_points = _as_list(server_values.get("target_qps"))
    concurrency_points = _as_list(server_values.get("concurrency", ServerSettings.concurrency))
    server = ServerSettings(
        target_qps=qps_points[0],
        latency_slo_s=server_values.get("latency_slo_ms", ServerSettings.latency_slo_s * 1e3) / 1e3,
        min_queries=server_values.get("min_queries", ServerSettings.min_queries),
        min_duration_s=server_values.get("min_duration_s", ServerSettings.min_duration_s),
        find_max_qps=server_values.get("find_max_qps", False),
        seed=server_values.get("seed", 0),
        ttft_bound_s=server_values["ttft_bound_ms"] / 1e3 if "ttft_bound_ms" in server_values else None,
        tpot_bound_s=server_values["tpot_bound_ms"] / 1e3 if "tpot_bound_ms" in server_values else None,
        concurrency=concurrency_points[0],
        find_max_concurrency=server_values.get("find_max_concurrency", False),
        arrival=server_values.get("arrival", ServerSettings.arrival),
        burstiness=server_values.get("burstiness", ServerSettings.burstiness),
        ramp_up_s=server_values.get("ramp_up_s", ServerSettings.ramp_up_s),
        arrival_trace=server_values.get("arrival_trace"),
        wake_up=server_values.get("wake_up", ServerSettings.wake_up),
    )
    points = (tuple(replace(server, target_qps=q, concurrency=c) for q in qps_points for c in concurrency_points)
              if len(qps_points) > 1 or len(concurrency_points) > 1 else ())
    defaults = SweepRequest()
    return SweepRequest(
        backends=tuple(sweep.get("backends", ())),
        devices=tuple(sweep.get("devices", ())),
        workloads=tuple(sweep.get("workloads", ())),
        params=tuple(params),
        dtypes=tuple(canonical_dtype(name) for name in sweep.get("dtypes", defaults.dtypes)),
        batch_sizes=tuple(sweep.get("batch_sizes", ())),
        scenarios=tuple(sweep.get("scenarios", defaults.scenarios)),
        stopping=stopping,
        server=server,
        server_points=points,
        threads=sweep.get("threads"),
        timeout_s=sweep.get("timeout_s", defaults.timeout_s),
        memory_limit_bytes=sweep.get("memory_limit"),
        backend_options=backend_tables,
        scenario_options=scenario_tables,
        explicit=explicit,
        sweep=sweep.get("sweep"),
    )


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _check_names(path: Path | str, request: SweepRequest, registry) -> None:
    from harness.contract.interface import KNOWN_DTYPES

    known = {
        "backends": (request.backends, registry.backend_names(), "backend"),
        "workloads": (request.workloads, registry.workload_names(), "workload"),
        "dtypes": (request.dtypes, KNOWN_DTYPES, "dtype"),
        "scenarios": (request.scenarios, registry.scenario_names(), "scenario"),
    }
    for key, (values, allowed, noun) in known.items():
        for value in values:
            if value not in allowed:
                raise UserError(
                    f"{path}: [sweep] {key}: unknown {noun} {value!r} (allowed: {', '.join(allowed)})"
                )


def plan_config(path: Path | str, request: SweepRequest, registry=None, backend_rows=None):
    """Plan a config's request; every planning error names the file."""
    from harness.engine.plugins import Registry
    from harness.orchestration.sweep import plan

    registry = registry or Registry()
    _check_names(path, request, registry)
    try:
        return plan(request, registry, backend_rows)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
