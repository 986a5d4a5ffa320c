"""``--sweep auto``: load points from one user to saturation, chosen as the run goes.

A fixed list of ``--concurrency`` values either stops short of saturation or spends
minutes past it. The auto sweep starts each concurrent-scenario benchmark at one client
and, after each point, plans the next at twice the clients while the point ran, was
valid (its SLOs met) and raised throughput by at least :data:`SATURATION_GAIN` over the
point before; the last point is the one that did not (GuideLLM's sweep starts the same
way, from synchronous to throughput). Every point is its own benchmark and record, and
the run's plan grows with it, so ``--resume`` knows every point decided so far.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable, Mapping

from harness.engine.scenarios import CONCURRENT
from harness.engine.spec import BenchmarkSpec
from harness.results.record import as_record, measurement_problem

#: A doubling of the clients that raises throughput by less than this share is saturation.
SATURATION_GAIN = 0.10


def _series(spec: BenchmarkSpec) -> str:
    """The key a benchmark's points share: its spec with the concurrency left out."""
    return replace(spec, server=replace(spec.server, concurrency=0)).key()


class AutoSweep:
    """Decides each concurrent benchmark's next load point from the record of its last."""

    def __init__(self, records: Iterable[Mapping[str, Any]] = ()) -> None:
        #: series key -> throughput by concurrency, of the points measured so far.
        self.points: dict[str, dict[int, float | None]] = {}
        for record in records:  # a resumed run: what its earlier points measured
            spec = BenchmarkSpec.from_dict(record["spec"])
            if spec.scenario == CONCURRENT and spec.server is not None:
                self._note(spec, record)

    def _note(self, spec: BenchmarkSpec, record: Mapping[str, Any]) -> float | None:
        typed = as_record(record)
        usable = measurement_problem(typed) is None and typed.throughput is not None
        value = typed.throughput.value if usable else None
        self.points.setdefault(_series(spec), {})[spec.server.concurrency] = value
        return value

    def after(self, spec: BenchmarkSpec, record: Mapping[str, Any]) -> list[BenchmarkSpec]:
        """The next point to run after ``spec`` finished with ``record``, or none."""
        if spec.scenario != CONCURRENT or spec.server is None:
            return []
        value = self._note(spec, record)
        clients = spec.server.concurrency
        if value is None or 2 * clients > spec.server.max_concurrency:
            return []  # failed, invalid or untrusted: no point beyond it means anything
        before = self.points[_series(spec)].get(clients // 2) if clients > 1 else None
        if before is not None and value < (1 + SATURATION_GAIN) * before:
            return []  # saturated: twice the clients bought less than SATURATION_GAIN more
        if 2 * clients in self.points[_series(spec)]:
            return []  # already measured (a resumed run)
        return [replace(spec, server=replace(spec.server, concurrency=2 * clients))]
