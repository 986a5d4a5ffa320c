"""Plugin discovery through entry points, with every failure isolated.

Backends live in the entry-point group ``bakeoff.backends``, workloads in
``bakeoff.workloads`` and scenarios in ``bakeoff.scenarios``. The built-ins register there exactly as a third-party
package does, so there is one code path for both.

Loading is lazy and guarded: a plugin whose import fails, whose factory
raises, or whose ``probe`` raises is reported as unavailable with that error;
it never breaks listing, running or any other command. (pluggy's
``load_setuptools_entrypoints`` lacks this isolation; we learned from it.)
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterable, Mapping, TypeVar

from harness.contract.errors import UserError
from harness.contract.interface import Availability, Backend, DeviceInfo, Scenario, Workload

BACKEND_GROUP = "bakeoff.backends"
WORKLOAD_GROUP = "bakeoff.workloads"
SCENARIO_GROUP = "bakeoff.scenarios"

T = TypeVar("T")


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` on one line, for reasons shown in tables."""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


@dataclass
class PluginEntry(Generic[T]):
    """One entry point, loaded at most once; a load failure is kept as ``error``."""

    name: str
    group: str
    target: str
    distribution: str | None
    _loader: Callable[[], Any]
    _loaded: bool = field(default=False, init=False)
    _value: Any = field(default=None, init=False)
    error: str | None = field(default=None, init=False)
    traceback: str | None = field(default=None, init=False)

    def load(self) -> Any | None:
        """The loaded object, or ``None`` with :attr:`error` set."""
        if not self._loaded:
            self._loaded = True
            try:
                self._value = self._loader()
            except BaseException as exc:  # noqa: BLE001 - a plugin may raise anything, even SystemExit
                if isinstance(exc, KeyboardInterrupt):
                    raise
                self.error = f"plugin failed to load: {describe_exception(exc)}"
                self.traceback = traceback.format_exc()
        return self._value


def _entry_points(group: str) -> Iterable[importlib.metadata.EntryPoint]:
    return importlib.metadata.entry_points(group=group)


def discover(group: str) -> dict[str, PluginEntry]:
    """All entry points of ``group`` by name. On a name clash the first found wins
    and the later one is kept under ``name@distribution`` so it stays visible."""
    found: dict[str, PluginEntry] = {}
    for ep in _entry_points(group):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else None
        name = ep.name if ep.name not in found else f"{ep.name}@{dist_name}"
        if name in found:  # the same distribution seen twice on sys.path
            continue
        found[name] = PluginEntry(name, group, ep.value, dist_name, ep.load)
    return found


@dataclass(frozen=True)
class BackendStatus:
    """One row of ``bakeoff backends``: a device of a backend, or why there is none."""

    backend: str
    device: str | None
    available: bool
    version: str | None
    reason: str | None
    info: DeviceInfo | None
    plugin: str

    def to_dict(self) -> dict[str, Any]:
        info = self.info.to_dict() if self.info else {}
        info.pop("backend", None)
        info.pop("device", None)
        info.pop("available", None)
        info.pop("reason", None)
        return {
            "backend": self.backend,
            "device": self.device,
            "available": self.available,
            "version": self.version,
            "reason": self.reason,
            "plugin": self.plugin,
            **info,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BackendStatus":
        """Rebuild a row from :meth:`to_dict` (a fleet node's listing, sent as JSON)."""
        data = dict(data)
        head = {k: data.pop(k, None) for k in ("backend", "device", "available", "version", "reason", "plugin")}
        data.pop("catalog", None)
        known = {f.name for f in dataclasses.fields(DeviceInfo)}
        info = None
        if head["device"] is not None:
            info = DeviceInfo(backend=head["backend"], device=head["device"], available=bool(head["available"]),
                              reason=head["reason"], **{k: v for k, v in data.items() if k in known})
        return cls(head["backend"], head["device"], bool(head["available"]), head["version"], head["reason"],
                   info, head["plugin"] or "")


class Registry:
    """The backends and workloads installed in this environment.

    Create one per command: discovery reads ``sys.path`` when constructed, and
    loaded plugins are cached for the registry's lifetime only.
    """

    def __init__(self) -> None:
        self.backend_entries = discover(BACKEND_GROUP)
        self.workload_entries = discover(WORKLOAD_GROUP)
        self.scenario_entries = discover(SCENARIO_GROUP)
        self._backends: dict[str, Backend | None] = {}
        self._backend_errors: dict[str, str] = {}

    # -- backends ---------------------------------------------------------
    def backend_names(self) -> list[str]:
        return sorted(self.backend_entries)

    def backend(self, name: str) -> Backend:
        """An instantiated backend; :class:`UserError` if unknown, ``RuntimeError`` if broken."""
        entry = self.backend_entries.get(name)
        if entry is None:
            known = ", ".join(self.backend_names()) or "none installed"
            raise UserError(f"unknown backend {name!r} (known: {known})")
        if name not in self._backends:
            factory = entry.load()
            instance = None
            if entry.error is None:
                try:
                    instance = factory() if callable(factory) else factory
                    if not isinstance(instance, Backend):
                        raise TypeError(
                            f"{entry.target} does not implement the Backend protocol "
                            "(needs name, probe, devices, prepare)"
                        )
                except Exception as exc:  # noqa: BLE001
                    self._backend_errors[name] = f"plugin failed to load: {describe_exception(exc)}"
                    instance = None
            else:
                self._backend_errors[name] = entry.error
            self._backends[name] = instance
        instance = self._backends[name]
        if instance is None:
            raise RuntimeError(self._backend_errors[name])
        return instance

    def backend_status(self, name: str) -> list[BackendStatus]:
        """Availability rows for one backend; never raises for a broken plugin."""
        entry = self.backend_entries[name]
        plugin = f"{entry.target} ({entry.distribution or 'unknown distribution'})"

        def unavailable(reason: str, version: str | None = None) -> list[BackendStatus]:
            return [BackendStatus(name, None, False, version, reason, None, plugin)]

        try:
            backend = self.backend(name)
        except RuntimeError as exc:
            return unavailable(str(exc))
        try:
            availability = backend.probe()
        except Exception as exc:  # noqa: BLE001
            return unavailable(f"probe failed: {describe_exception(exc)}")
        if not isinstance(availability, Availability):
            return unavailable(f"probe returned {type(availability).__name__}, not Availability")
        if not availability.available:
            return unavailable(availability.reason or "unavailable", availability.version)
        try:
            devices = list(backend.devices())
        except Exception as exc:  # noqa: BLE001
            return unavailable(f"listing devices failed: {describe_exception(exc)}", availability.version)
        if not devices:
            return unavailable("no devices found", availability.version)
        return [
            BackendStatus(
                name,
                info.device,
                info.available,
                availability.version,
                info.reason,
                info,
                plugin,
            )
            for info in devices
        ]

    def all_backend_status(self) -> list[BackendStatus]:
        return [row for name in self.backend_names() for row in self.backend_status(name)]

    # -- workloads --------------------------------------------------------
    def workload_names(self) -> list[str]:
        return sorted(self.workload_entries)

    def workload_class(self, name: str) -> type[Workload]:
        entry = self.workload_entries.get(name)
        if entry is None:
            known = ", ".join(self.workload_names()) or "none installed"
            raise UserError(f"unknown workload {name!r} (known: {known})")
        cls = entry.load()
        if entry.error is not None:
            raise RuntimeError(entry.error)
        if not (isinstance(cls, type) and issubclass(cls, Workload)):
            raise RuntimeError(f"plugin failed to load: {entry.target} is not a Workload subclass")
        return cls

    def workload(self, name: str, params: dict[str, Any] | None = None) -> Workload:
        return self.workload_class(name)(**(params or {}))

    # -- scenarios --------------------------------------------------------
    def scenario_names(self) -> list[str]:
        return sorted(self.scenario_entries)

    def scenario(self, name: str) -> Scenario:
        """An instantiated scenario; :class:`UserError` if unknown, ``RuntimeError`` if broken."""
        entry = self.scenario_entries.get(name)
        if entry is None:
            known = ", ".join(self.scenario_names()) or "none installed"
            raise UserError(f"unknown scenario {name!r} (known: {known})")
        cls = entry.load()
        if entry.error is not None:
            raise RuntimeError(entry.error)
        if not (isinstance(cls, type) and issubclass(cls, Scenario)):
            raise RuntimeError(f"plugin failed to load: {entry.target} is not a Scenario subclass")
        if cls.name != name:
            raise RuntimeError(f"plugin failed to load: {entry.target} is named {cls.name!r}, "
                               f"registered as {name!r}")
        return cls()


    def scenario_listing(self) -> list[dict[str, Any]]:
        """Every installed scenario with its settings and where it comes from; a broken one
        is listed with its error, as a broken backend is."""
        rows = []
        for name in self.scenario_names():
            entry = self.scenario_entries[name]
            row: dict[str, Any] = {"name": name, "plugin": f"{entry.target} ({entry.distribution or 'unknown'})"}
            try:
                scenario = self.scenario(name)
            except RuntimeError as exc:
                rows.append({**row, "error": str(exc)})
                continue
            rows.append({**row, "description": scenario.description,
                         "uses_server_settings": scenario.uses_server_settings,
                         "default_batch_sizes": list(scenario.default_batch_sizes),
                         "settings": [{"key": key, **option.to_dict(), "allowed": option.describe()}
                                      for key, option in scenario.SETTINGS.items()]})
        return rows


_SCENARIOS: dict[str, Scenario] = {}


def scenario_named(name: str) -> Scenario | None:
    """The installed scenario ``name`` (cached once found), or ``None`` when it is not installed
    or broken: for computing a spec's identity, many times per plan, without rediscovery."""
    if name not in _SCENARIOS:
        try:
            _SCENARIOS[name] = Registry().scenario(name)
        except (UserError, RuntimeError):
            return None
    return _SCENARIOS[name]
