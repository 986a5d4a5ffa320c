"""Frozen identity of one benchmark, kept apart from its measurement.

A :class:`BenchmarkSpec` says *what* is measured (backend, device, workload and
its parameters, dtype, batch size) and *how* the loop runs (warm-up,
iterations, threads, time limit). It crosses process boundaries as JSON, names
the record file, and is what a resumed run compares against.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

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
    warmup: int = 5
    iterations: int = 50
    threads: int | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    labels: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def create(cls, *, params: Mapping[str, Any] | None = None, **fields: Any) -> "BenchmarkSpec":
        return cls(params=tuple(sorted((params or {}).items())), **fields)

    @property
    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)

    def identity(self) -> dict[str, Any]:
        """The fields that make two measurements comparable (not loop settings)."""
        return {
            "backend": self.backend,
            "device": self.device,
            "workload": self.workload,
            "params": self.params_dict,
            "dtype": self.dtype,
            "batch_size": self.batch_size,
        }

    def key(self) -> str:
        """A stable, file-name-safe key: readable prefix plus a hash of the identity."""
        digest = hashlib.sha256(
            json.dumps(self.identity(), sort_keys=True).encode()
        ).hexdigest()[:10]
        readable = f"{self.backend}-{self.device}-{self.workload}-{self.dtype}-b{self.batch_size}"
        return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', readable)}-{digest}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["params"] = self.params_dict
        data["labels"] = dict(self.labels)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BenchmarkSpec":
        data = dict(data)
        data["params"] = tuple(sorted(dict(data.get("params", {})).items()))
        data["labels"] = tuple(sorted(dict(data.get("labels", {})).items()))
        return cls(**data)
