"""Frozen identity of one benchmark, kept apart from its measurement.

A :class:`BenchmarkSpec` says *what* is measured (backend, device, workload and
its parameters, dtype, batch size, scenario) and *how* (stopping rule,
threads, time and memory limits). It crosses process boundaries as JSON,
names the record file, and is what a resumed run compares against.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

from harness.contract.options import freeze, thaw
from harness.engine.scenarios import SINGLE_STREAM, ServerSettings
from harness.engine.timing import Stopping

#: Seconds a benchmark may run (prepare and measure) before its worker is killed.
DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class BenchmarkSpec:
    backend: str
    device: str
    workload: str
    params: tuple[tuple[str, Any], ...] = ()
    dtype: str = "float32"
    batch_size: int = 1
    scenario: str = SINGLE_STREAM
    stopping: Stopping = field(default_factory=Stopping)
    server: ServerSettings | None = None
    threads: int | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_limit_bytes: int | None = None
    #: Backend options that change what is measured (graph capture, provider
    #: options, IOBinding): part of the identity. See harness/contract/options.py.
    options: tuple[tuple[str, Any], ...] = ()
    #: The scenario's own settings (a plugin scenario's ``SETTINGS``), defaults dropped:
    #: part of the identity through the scenario (harness.contract.interface.Scenario.identity).
    scenario_options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def create(cls, *, params: Mapping[str, Any] | None = None, warmup: int | None = None,
               iterations: int | None = None, options: Mapping[str, Any] | None = None,
               scenario_options: Mapping[str, Any] | None = None, **fields: Any) -> "BenchmarkSpec":
        """Build a spec; ``warmup``/``iterations`` are shorthands for a fixed-count stopping rule."""
        stopping = fields.pop("stopping", Stopping())
        if warmup is not None:
            stopping = replace(stopping, warmup=warmup)
        if iterations is not None:
            stopping = stopping.with_fixed_iterations(iterations)
        return cls(stopping=stopping, params=tuple(sorted((params or {}).items())),
                   options=freeze(options or {}), scenario_options=freeze(scenario_options or {}), **fields)

    @property
    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def options_dict(self) -> dict[str, Any]:
        return thaw(self.options)

    @property
    def scenario_options_dict(self) -> dict[str, Any]:
        return thaw(self.scenario_options)

    def identity(self) -> dict[str, Any]:
        """The fields that make two measurements comparable (not loop settings)."""
        identity = {
            "backend": self.backend,
            "device": self.device,
            "workload": self.workload,
            "params": self.params_dict,
            "dtype": self.dtype,
            "batch_size": self.batch_size,
            "scenario": self.scenario,
        }
        if self.options:  # absent when default, so keys of runs before options existed stay valid
            identity["options"] = self.options_dict
        # The scenario owns its part (the server's target and SLO, a plugin's settings). One that
        # is not installed here (reading another machine's run) still keys by its settings.
        from harness.engine.plugins import scenario_named

        scenario = scenario_named(self.scenario)
        if scenario is not None:
            identity.update(scenario.identity(self.scenario_options_dict, self.server))
        elif self.scenario_options:
            identity["scenario_options"] = self.scenario_options_dict
        return identity

    def key(self) -> str:
        """A stable, file-name-safe key: readable prefix plus a hash of the identity."""
        digest = hashlib.sha256(
            json.dumps(self.identity(), sort_keys=True).encode()
        ).hexdigest()[:10]
        readable = f"{self.backend}-{self.device}-{self.workload}-{self.dtype}-b{self.batch_size}-{self.scenario}"
        return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', readable)}-{digest}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["params"] = self.params_dict
        data["options"] = self.options_dict
        data["scenario_options"] = self.scenario_options_dict
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BenchmarkSpec":
        data = dict(data)
        data["params"] = tuple(sorted(dict(data.get("params", {})).items()))
        data["options"] = freeze(dict(data.get("options") or {}))
        data["scenario_options"] = freeze(dict(data.get("scenario_options") or {}))
        data["stopping"] = Stopping(**data.get("stopping", {}))
        if data.get("server") is not None:
            data["server"] = ServerSettings(**data["server"])
        return cls(**data)
