"""The result record: its typed form and JSON shape (:class:`Record`, ``schema_version``
and :func:`upgrade` of older files), one label, and one definition each of a record that
may be ranked, charted or compared. Every figure and warning in it is derived by
harness/results/derive.py.

harness/results/store.py writes what :func:`~harness.results.derive.derive` returns; docs/results.md's field
table is generated from :class:`Record`. Every reader (tables, compare, rank, report,
roofline, export) used to name a benchmark and judge a record its own way: five label
formats, four definitions of "usable", so the HTML report charted records that failed
parity. They ask here instead.

* :func:`measurement_problem` (ranked and charted records): ran, passed
  parity, plausible, and valid for its scenario.
* :func:`comparison_problem` (compared records): ran, passed parity,
  plausible. A scenario-invalid result (too short, SLO missed) still has a
  latency distribution worth comparing; its invalidity is shown beside it.

This module is a reader's: it imports the pure analysis functions and what is known
about hardware, never the engine that produced the record (tests/test_layers.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Mapping, Sequence

from harness.contract.errors import FAILED, OK, STATUSES, UNAVAILABLE, UNSUPPORTED  # noqa: F401 - re-exported
from harness.contract.options import backend_label
from harness.hardware.plausibility import assess_record


def as_record(record: "Record | Mapping[str, Any]") -> "Record":
    """The typed record of ``record``: itself when typed already, else its JSON form read as
    this version's (readers of files get that from harness/results/store.py, which upgrades
    older versions on the way in). Every reader takes either."""
    return record if isinstance(record, Record) else Record.of(record)


def _spec(record: "Record | Mapping[str, Any]") -> Mapping[str, Any]:
    return record.spec if isinstance(record, Record) else record["spec"]  # labels are hot: no parse


def candidate_label(record: "Record | Mapping[str, Any]") -> str:
    """``torch[graph=compile]/cuda:0 bfloat16 b8``: what ran, the thing a buyer chooses between."""
    spec = _spec(record)
    return f"{backend_label(spec)}/{spec['device']} {spec['dtype']} b{spec['batch_size']}"


def load_label(record: "Record | Mapping[str, Any]") -> str:
    """``concurrency=4``, ``qps=2.5``: the load point of a benchmark of the concurrent or server
    scenario (one of a sweep from one user to saturation), else ``""``."""
    spec = _spec(record)
    server = spec.get("server") or {}
    scenario = spec.get("scenario")
    if scenario == "concurrent":
        return "max concurrency" if server.get("find_max_concurrency") else f"concurrency={server.get('concurrency')}"
    if scenario == "server":
        qps = server.get("target_qps")
        arrival = server.get("arrival", "poisson")
        if arrival == "trace":
            return f"trace={server.get('arrival_trace')}"
        point = "max qps" if server.get("find_max_qps") or qps is None else f"qps={qps:g}"
        if arrival == "gamma":
            point += f" gamma({server.get('burstiness', 1.0):g})"
        elif arrival != "poisson":
            point += f" {arrival}"
        point += f" ramp={server['ramp_up_s']:g}s" if server.get("ramp_up_s") else ""
        return point + (f" wake={server['wake_up']}" if server.get("wake_up", "spin") != "spin" else "")
    return ""


def workload_label(record: "Record | Mapping[str, Any]", load: bool = True) -> str:
    """``gemm size=1024 server[qps=300]``: what was run, with the scenario, its non-default
    settings and its load point; ``load=False`` leaves the load point out, so that the points of
    one sweep share a label (the frontier, and the rank's choice of a point)."""
    spec = _spec(record)
    params = ",".join(f"{k}={v}" for k, v in sorted((spec.get("params") or {}).items()))
    settings = [f"{k}={v}" for k, v in sorted((spec.get("scenario_options") or {}).items())]
    point = load_label(record) if load else ""
    settings += [point] if point else []
    scenario = spec.get("scenario", "single-stream") + (f"[{','.join(settings)}]" if settings else "")
    return " ".join(part for part in (spec["workload"], params, scenario) if part)


def benchmark_label(record: "Record | Mapping[str, Any]") -> str:
    """One benchmark, for lists that mix workloads: candidate, then workload."""
    return f"{candidate_label(record)} {workload_label(record)}"


def _implausibility(record: "Record", source: Mapping[str, Any] | None = None, catalog: Any = None,
                    recheck: bool = True) -> str | None:
    verdicts = [record.plausibility or Plausibility()]
    if recheck:  # a --catalog may know a device (and its peak) that the run's built-in one did not
        source = source if source is not None else record.source if record.source is not None else record.to_json()
        fresh = assess_record(source, catalog)
        verdicts.append(_typed(Plausibility, fresh, "plausibility") or Plausibility())
    for verdict in verdicts:
        if verdict.verdict == "implausible":
            return f"implausible: {verdict.reason}"
    return None


def comparison_problem(record: "Record | Mapping[str, Any]") -> str | None:
    """Why this record's samples cannot be compared with another run's, or ``None``:
    ``failed``, ``ok (parity failed)``, ``ok (implausible)``."""
    record = as_record(record)
    text = str(record.status)
    if record.parity is not None and record.parity.passed is False:
        text += " (parity failed)"
    if _implausibility(record, recheck=False):
        text += " (implausible)"
    return None if text == "ok" else text


def parity_summary(record: "Record | Mapping[str, Any]") -> str:
    """How close the candidate's output came to the workload's float32 reference, in a buyer's
    terms: ``cosine 0.974`` (``, 3 tokens differ`` for generation), ``exact``, or ``not checked``.
    A 4-bit candidate and a float16 one can pass parity with very different margins."""
    parity = as_record(record).parity
    if parity is None or parity.passed is None:
        return "not checked"
    mismatched = parity.mismatched_ids if isinstance(parity.mismatched_ids, int) else 0
    tokens = f", {mismatched} token{'s' * (mismatched != 1)} differ" if mismatched else ""
    if parity.max_abs_error == 0 and not mismatched:
        return "exact"
    if parity.cosine is not None:
        return f"cosine {min(parity.cosine, 1.0):.6g}{tokens}"
    if parity.max_rel_error is not None:
        return f"max rel. error {parity.max_rel_error:.2g}{tokens}"
    return ("passed" if parity.passed else "failed") + tokens


def measurement_problem(record: "Record | Mapping[str, Any]", catalog: Any = None) -> str | None:
    """Why this record's numbers may not be ranked or charted, or ``None`` when they may.

    It ran (``ok``), passed parity, is not implausible (re-checked against
    ``catalog``, the built-in one when ``None``) and its scenario result is
    valid. A chart of a wrong number misleads as much as a ranking of it.
    """
    source = None if isinstance(record, Record) else record
    record = as_record(record)
    if record.status != OK:
        return f"status {record.status}: {record.reason}"
    if record.parity is not None and record.parity.passed is False:
        return f"parity failed: {record.parity.reason}"
    implausible = _implausibility(record, source, catalog)
    if implausible:
        return implausible
    if record.scenario is not None and record.scenario.valid is False:
        return f"invalid {record.scenario.name} result: {record.scenario.validity_reason}"
    return None


def rankable(record: "Record | Mapping[str, Any]") -> bool:
    """Whether the record's numbers may be ranked and charted (:func:`measurement_problem`)."""
    return measurement_problem(record) is None


# -- the record's typed form ---------------------------------------------------------------------

#: Version of the record file's shape. Bump it, add a line to harness/results/store.py's schema
#: history, and teach :func:`upgrade` to read the old shape.
SCHEMA_VERSION = 1
RECORD_KIND = "bakeoff.record"


class RecordError(ValueError):
    """A record file that does not have the record's shape (the message names the key)."""


def _doc(meaning: str, default: Any = None) -> Any:
    return field(default=default, metadata={"doc": meaning})


#: Field names that are bookkeeping, not part of a record's JSON: ``extra`` holds the keys
#: this version does not name, ``present`` the keys the JSON had (so a part writes back
#: exactly the keys it read, a ``null`` it read included, and none it did not).
_BOOKKEEPING = ("extra", "present", "source")


def _is_table(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)  # dicts first: the ABC check is slow


@functools.cache
def _known(cls) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.name not in _BOOKKEEPING)


def _typed(cls, data: Any, where: str):
    """A typed part from its JSON mapping (``None`` stays ``None``); unknown keys are kept."""
    if data is None or isinstance(data, cls):
        return data
    if not _is_table(data):
        raise RecordError(f"{where} must be a table, got {type(data).__name__}")
    known = _known(cls)
    nested = _NESTED.get(cls, {})
    values = {k: _typed(nested[k], data.get(k), f"{where}.{k}") if k in nested else data.get(k) for k in known}
    return cls(**values, extra={k: v for k, v in data.items() if k not in known},
               present=frozenset(k for k in known if k in data))


def _json(part) -> Any:
    if part is None:
        return None
    out = {}
    for name in _known(type(part)):
        value = getattr(part, name)
        if part.present is None and value is None or part.present is not None and name not in part.present:
            continue
        out[name] = _json(value) if is_dataclass(value) else value
    out.update(part.extra or {})
    return out


def part_json(part: Any) -> Any:
    """A typed part's JSON mapping, exactly as the file holds it (``None`` for no part)."""
    return _json(part)


def _present() -> Any:
    return field(default=None, repr=False, compare=False, metadata={"doc": "the keys the JSON had"})


@dataclass(frozen=True)
class Rate:
    """A rate with its unit and its 95% interval: throughput, decode tokens/s."""

    value: float | None = None
    unit: str | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    basis: str | None = None
    extra: Mapping[str, Any] = _doc("keys this version does not name", default=None)
    present: frozenset | None = _present()


@dataclass(frozen=True)
class Stats:
    """Statistics of the raw latencies, in seconds (harness/analysis/stats.py)."""

    count: int | None = None
    mean_s: float | None = None
    median_s: float | None = None
    stdev_s: float | None = None
    min_s: float | None = None
    max_s: float | None = None
    p50_s: float | None = None
    p90_s: float | None = None
    p95_s: float | None = None
    p99_s: float | None = None
    median_ci_low_s: float | None = None
    median_ci_high_s: float | None = None
    cv: float | None = None
    outliers: int | None = None
    ci_method: str | None = None
    ci_level: float | None = None
    extra: Mapping[str, Any] = _doc("keys this version does not name", default=None)
    present: frozenset | None = _present()


@dataclass(frozen=True)
class TokenRates:
    """LLM workloads (docs/measurement.md, vLLM's definitions): TTFT, TPOT, ITL and E2E latency
    statistics in seconds, the aggregate output rate, one stream's decode rate, and requests/s."""

    ttft: Mapping[str, Any] | None = None
    #: Reasoning models: time to the first answer token (after the reasoning).
    ttfa: Mapping[str, Any] | None = None
    tpot: Mapping[str, Any] | None = None
    itl: Mapping[str, Any] | None = None
    e2e: Mapping[str, Any] | None = None
    output_tokens_per_s: Rate | None = None
    decode_tokens_per_s: Rate | None = None
    decode_bytes_per_s: float | None = None
    requests_per_s: float | None = None
    output_tokens: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = _doc("keys this version does not name", default=None)
    present: frozenset | None = _present()



@dataclass(frozen=True)
class Parity:
    """The output against the workload's reference, and the verdict."""

    passed: bool | None = None
    reason: str | None = None
    reference: str | None = None
    reference_cached: bool | None = None
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    cosine: float | None = None
    tolerance: Any = None
    mismatched_ids: Any = None
    extra: Mapping[str, Any] = _doc("keys this version does not name", default=None)
    present: frozenset | None = _present()


@dataclass(frozen=True)
class Energy:
    """Joules over the metered span, or ``joules: None`` with the reason (docs/measurement.md)."""

    joules: float | None = None
    seconds: float | None = None
    average_watts: float | None = None
    estimated: bool | None = None
    meters: Sequence[Mapping[str, Any]] | None = None
    reason: str | None = None
    per_unit_reason: str | None = None
    extra: Mapping[str, Any] = _doc("``joules_per_<unit>`` and keys this version does not name", default=None)
    present: frozenset | None = _present()

    def joules_per(self, unit: str | None) -> float | None:
        """Joules per unit of work (``joules_per_token``...), where the scenario allows one."""
        value = (self.extra or {}).get(f"joules_per_{unit}")
        return value if isinstance(value, (int, float)) else None


@dataclass(frozen=True)
class Memory:
    """Peak memory, each figure with its source."""

    host_peak_rss_bytes: int | None = None
    host_peak_rss_children_bytes: int | None = None
    host_peak_rss_source: str | None = None
    device_peak_bytes: int | None = None
    device_peak_source: str | None = None
    weight_bytes: int | None = None
    weight_bytes_source: str | None = None
    input_bytes: int | None = None
    extra: Mapping[str, Any] = _doc("keys this version does not name", default=None)
    present: frozenset | None = _present()


@dataclass(frozen=True)
class ScenarioOutcome:
    """The scenario's metric and validity; server and plugin scenarios add their own facts in
    ``extra`` (``target_qps``, ``achieved_qps``, ``issue_lateness``, ``wake_up``...)."""

    name: str | None = None
    metric: Mapping[str, Any] | None = None
    valid: bool | None = None
    validity_reason: str | None = None
    warnings: Sequence[str] | None = None
    extra: Mapping[str, Any] = _doc("the scenario's own facts", default=None)
    present: frozenset | None = _present()


@dataclass(frozen=True)
class Interference:
    """What else used the machine over the timed region, and the verdict."""

    noisy: bool | None = None
    reasons: Sequence[str] | None = None
    other_cpu_share: float | None = None
    steal_share: float | None = None
    resolution_share: float | None = None
    loadavg_1m: float | None = None
    cpus: int | None = None
    window_s: float | None = None
    extra: Mapping[str, Any] = _doc("``cpu_mhz``, ``cpu_governor``, ``device_throttle``, ``source``...", default=None)
    present: frozenset | None = _present()


@dataclass(frozen=True)
class Plausibility:
    """Achieved against the device's physical peak: ``ok``, ``implausible`` or ``not checked``."""

    verdict: str | None = None
    reason: str | None = None
    checks: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = _doc("keys this version does not name", default=None)
    present: frozenset | None = _present()


@dataclass(frozen=True)
class Precision:
    """Whether the dtype runs natively on the device, and why not."""

    dtype: str | None = None
    native: bool | None = None
    reason: str | None = None
    extra: Mapping[str, Any] = _doc("keys this version does not name", default=None)
    present: frozenset | None = _present()


#: Parts within parts: a part's fields that are typed parts themselves.
_NESTED: dict[type, dict[str, type]] = {TokenRates: {"output_tokens_per_s": Rate, "decode_tokens_per_s": Rate}}

#: The record's typed parts, by field name.
PARTS = {"stats": Stats, "throughput": Rate, "tokens": TokenRates, "parity": Parity, "energy": Energy,
         "memory": Memory, "scenario": ScenarioOutcome, "interference": Interference,
         "plausibility": Plausibility, "precision": Precision}


@dataclass(frozen=True)
class Record:
    """One benchmark's record (``records/<key>.json``): identity, raw samples, and all that is
    derived from them. :meth:`from_json` reads any supported version; :meth:`to_json` writes
    this one. docs/results.md's field table is generated from these fields' docs."""

    schema_version: int = _doc("the file's shape version (an integer; see harness/results/store.py for the history)")
    kind: str = _doc(f"`{RECORD_KIND}`")
    run_id: str = _doc("the run it belongs to")
    key: str = _doc("file-name-safe identity: readable prefix + hash of the identity fields")
    spec: Mapping[str, Any] = _doc(
        "backend, device, workload, params, dtype, batch_size, scenario, stopping, server (load and SLO of the "
        "server and concurrent scenarios), threads, timeout_s, memory_limit_bytes, options (backend options: "
        "graph capture, provider options, endpoint URL; part of the identity when not default), scenario_options "
        "(the scenario's own settings, e.g. a plugin scenario's; part of the identity when not default)")
    status: str = _doc("`ok`, `failed`, `unsupported` or `unavailable`; only `ok` records carry numbers")
    measurement: Mapping[str, Any] | None = _doc(
        "`latencies_ns` (every timed iteration), `host_latencies_ns` (with a device timer), `token_offsets_ns` "
        "(LLMs: each request's mark times), `token_counts` (per request, the tokens a server's usage counted, "
        "where that differs from one per mark), `answer_marks` (reasoning models: per request, the mark of the "
        "first answer token), `warmup`, `timer`, `timer_resolution_ns`, `harness_overhead_ns`, `elapsed_ns`, "
        "`started_unix_ns` (wall clock at the first timed iteration)")
    failure: Mapping[str, Any] | None = _doc(
        "why it failed: `cause` (`error`, `signal`, `exit`, `timeout`, `out-of-memory`, `interrupted` or `lost`: a "
        "fleet node or Ray worker died), with `message`, `stderr_tail`, `traceback`, `signal` or `exit_code`; an "
        "out-of-memory under `--memory-limit` adds `memory_limit_bytes` and `enforced_by` (`cgroup v2 memory.max` "
        "or `RLIMIT_DATA`)")
    reason: str | None = _doc("why not `ok`, in one line")
    unit: str | None = _doc("the workload's unit of work (`FLOP`, `sample`, `token`, ...)")
    work_per_step: float | None = _doc("how much of `unit` one step does")
    flops_per_step: float | None = _doc(
        "FLOPs of one step where the unit is not `FLOP` and the workload can say (`mlp`); used only by the "
        "plausibility check")
    backend_version: str | None = _doc("the backend's runtime version")
    device_info: Mapping[str, Any] | None = _doc(
        "device identity (vendor, model, memory, runtime/driver versions); `native_dtypes` and `emulated_dtypes` "
        "(dtype: why not native) where the backend declares them; `peaks` (`flop_per_s` by dtype and "
        "`bytes_per_s`, each `{value, basis}`) where the device declares them")
    peak_device_memory_bytes: int | None = _doc("the runtime's device memory peak, where it reports one")
    prepare_s: float | None = _doc("seconds the backend's prepare took (export, compile, copy), outside timing")
    details: Mapping[str, Any] | None = _doc(
        "what the backend did (exporter, cache hit, providers and their effective options, IOBinding, graph mode "
        "and compile time, effective precision, threads; `isolation`: for a worker process, the parent-death "
        "guards in force and how its memory limit is enforced); for endpoints also `request_failures` by cause, "
        "token-count source, usage counts and `output_length_mismatches`")
    stopping: Mapping[str, Any] | None = _doc("how sampling stopped: mode, target and achieved CI, whether reached")
    scenario: ScenarioOutcome | None = _doc(
        "the scenario's metric, `valid` and `validity_reason`; server runs add `target_qps`, `achieved_qps` "
        "(invalid more than 5% below the target), `issue_lateness` (`count`, `p50_s`, `p99_s`, `max_s`), "
        "`wake_up` (`policy`: `spin` or `sleep`; with spin, the host's measured sleep overshoot and spin "
        "threshold) and `warnings`; a plugin scenario adds its own facts")
    throughput: Rate | None = _doc("`value`, `unit` (e.g. `FLOP/s`), `ci_low`, `ci_high`, `basis`")
    parity: Parity | None = _doc(
        "deviation from the reference output and the verdict `passed`; `reference_cached` says whether the "
        "reference came from the on-disk cache")
    energy: Energy | None = _doc(
        "joules, seconds, average watts, joules per unit, each meter's reading and sampling cost; `joules: null` "
        "with the `reason` when no meter the backend offers could read (docs/measurement.md)")
    memory: Memory | None = _doc("host peak RSS (VmHWM), device peak, weight and input bytes, each with its source")
    utilisation: Mapping[str, Any] | None = _doc("CPU cores busy during the scenario; device utilisation where a meter reports it")
    started_at: str | None = _doc("ISO-8601 UTC")
    finished_at: str | None = _doc("ISO-8601 UTC")
    node: Mapping[str, Any] | None = _doc(
        "fleet runs: the environment of the node that ran it (host facts, Ray node id, assigned accelerator ids); "
        "`null` for local runs, whose host is the manifest's")
    interference: Interference | None = _doc(
        "what else used the machine over the timed region: `other_cpu_share`, `steal_share`, `resolution_share`, "
        "`loadavg_1m`, `cpus`, `cpu_mhz` (`before`, `after`), `cpu_governor`, `device_throttle`, `window_s`, and "
        "the verdict `noisy` with its `reasons` (others > 10% of the machine, steal > 2%, or device throttling); "
        "`null` for records that never ran")
    stats: Stats | None = _doc(
        "`count`, `mean_s`, `median_s`, `stdev_s`, `min_s`, `max_s`, `p50_s`, `p90_s`, `p95_s`, `p99_s`, "
        "`median_ci_low_s`, `median_ci_high_s`, `cv`, `outliers`, `ci_method`, `ci_level`")
    tokens: TokenRates | None = _doc(
        "LLM workloads: TTFT, TPOT, ITL, E2E statistics (and `ttfa`, the time to the first answer token, for "
        "reasoning models); `output_tokens_per_s` (aggregate: every request's tokens "
        "over the timed span), `decode_tokens_per_s` (one stream: batch / median TPOT), `requests_per_s`, "
        "`output_tokens` (total, per-request min and max)")
    warnings: tuple[str, ...] = _doc(
        "stability warnings, and notes such as `bfloat16 emulated: CPU lacks avx512_bf16/amx_bf16`, "
        "`implausible: ...` and `interference: ...` (tables show them as notes)", default=())
    precision: Precision | None = _doc(
        "`dtype`, `native` (`true`, `false`, or `null` when the backend declares nothing for the device) and "
        "`reason` for a non-native dtype (docs/measurement.md)")
    plausibility: Plausibility | None = _doc(
        "`ok` records: `verdict` (`ok`, `implausible` or `not checked`), `reason`, and `checks` (`compute`, "
        "`bandwidth`, `memory`), each with its verdict, reason, `achieved`, `peak`, `unit` and `basis`. An "
        "`implausible` record is never ranked or compared; `null` for records that did not run")
    host: Any = _doc("the host name")
    fingerprint_inputs: Mapping[str, Any] | None = _doc(
        "what went into the fingerprint: CPU model and architecture, core counts, memory, Python, the host's "
        "`packages`, backend and its version, device, device model and memory, runtime and driver versions, threads")
    fingerprint: str | None = _doc("the comparability hash of `fingerprint_inputs`")
    extra: Mapping[str, Any] = _doc("keys a newer bakeoff wrote that this one does not name (kept as they are)",
                                    default=None)
    #: The JSON mapping this record was read from, when it was (not written back): a re-check
    #: of plausibility reads it instead of rebuilding it.
    source: Mapping[str, Any] | None = field(default=None, repr=False, compare=False,
                                             metadata={"doc": "the JSON it was read from"})

    @property
    def requests_per_s(self) -> float | None:
        """Completed requests (queries) per second over the timed span: an LLM record's
        ``tokens.requests_per_s``, else the timed queries over the measured elapsed time (a
        query being one step of ``batch_size`` samples). ``None`` when nothing was timed."""
        if self.tokens is not None and self.tokens.requests_per_s is not None:
            return self.tokens.requests_per_s
        measurement = self.measurement or {}
        latencies, elapsed = measurement.get("latencies_ns") or [], measurement.get("elapsed_ns")
        return len(latencies) / (elapsed / 1e9) if latencies and elapsed else None

    @classmethod
    def check(cls, data: Mapping[str, Any], where: str = "record") -> dict[str, Any]:
        """The JSON mapping of a record of this or an older version, upgraded (:func:`upgrade`)
        and checked to have the record's shape without building it (reading a run folder checks
        every file); :class:`RecordError` naming ``where`` and the key when it does not."""
        data = upgrade(data, where)
        for key, kind in (("spec", Mapping), ("status", str), ("key", str)):
            if not (_is_table(data.get(key)) if kind is Mapping else isinstance(data.get(key), kind)):
                raise RecordError(f"{where}: {key} must be {'a table' if kind is Mapping else 'a string'}, "
                                  f"got {data.get(key)!r}"[:200])
        for name, part in PARTS.items():
            value = data.get(name)
            if value is not None and not _is_table(value):
                raise RecordError(f"{where}: {name} must be a table, got {type(value).__name__}")
            for inner in _NESTED.get(part, {}) if value else ():
                if value.get(inner) is not None and not _is_table(value[inner]):
                    raise RecordError(f"{where}: {name}.{inner} must be a table, got {type(value[inner]).__name__}")
        warnings = data.get("warnings") or []
        if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
            raise RecordError(f"{where}: warnings must be a list of strings")
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "record") -> "Record":
        """The typed record of a JSON mapping of this or an older version (:meth:`check`)."""
        return cls.of(cls.check(data, where))

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> "Record":
        """The typed record of a JSON mapping already in this version's shape, trusted as it is
        (no version check, no required key): what readers use for records they were handed.
        Files are read with :meth:`from_json`."""
        known = _known(cls)
        values = {k: data[k] for k in known if k in data}
        for name, part in PARTS.items():
            if name in data:
                values[name] = _typed(part, data[name], f"record {data.get('key')}: {name}")
        values["warnings"] = tuple(data.get("warnings") or ())
        return cls(**values, extra={k: v for k, v in data.items() if k not in known}, source=data)

    def to_json(self) -> dict[str, Any]:
        """The record's JSON mapping, keys in file order (what the store writes)."""
        out: dict[str, Any] = {}
        for name in _known(type(self)):
            value = getattr(self, name)
            out[name] = (_json(value) if is_dataclass(value)
                         else list(value) if name == "warnings" else value)
        out.update(self.extra or {})
        return out


def upgrade(data: Mapping[str, Any], where: str = "record") -> dict[str, Any]:
    """Bring a record of an older ``schema_version`` up to :data:`SCHEMA_VERSION` (version 1
    is the first; nothing to convert yet), refusing a newer one or a wrong kind."""
    if not isinstance(data, Mapping) or data.get("kind") != RECORD_KIND:
        found = data.get("kind") if isinstance(data, Mapping) else type(data).__name__
        raise RecordError(f"{where}: not a bakeoff record (kind={found!r}, expected {RECORD_KIND!r})")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecordError(f"{where}: schema_version must be an integer >= 1, got {version!r}")
    if version > SCHEMA_VERSION:
        raise RecordError(f"{where}: written with schema_version {version}, this bakeoff reads up to "
                          f"{SCHEMA_VERSION}; upgrade bakeoff")
    if data.get("status") not in STATUSES:
        raise RecordError(f"{where}: status {data.get('status')!r} is not one of {', '.join(STATUSES)}")
    return dict(data)


def fields_markdown() -> str:
    """docs/results.md's record table, generated from :class:`Record` (a test keeps them equal)."""
    lines = ["| key | meaning |", "|---|---|"]
    lines += [f"| `{f.name}` | {f.metadata['doc']} |" for f in fields(Record) if f.name not in _BOOKKEEPING]
    return "\n".join(lines)


def parts_markdown() -> str:
    """docs/results.md's table of the typed parts a reader gets from :class:`Record`."""
    lines = ["| field | type | attributes |", "|---|---|---|"]
    for name, part in PARTS.items():
        attributes = ", ".join(f"`{a}`" + (f" ({_NESTED[part][a].__name__})" if a in _NESTED.get(part, {}) else "")
                               for a in _known(part))
        summary = " ".join((part.__doc__ or "").split()).replace("``", "`").split(". ")[0].rstrip(".")
        lines.append(f"| `{name}` | `{part.__name__}`: {summary} | {attributes} |")
    return "\n".join(lines)
