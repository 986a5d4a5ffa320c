"""Run benchmarks in the calling process: fast to start, easy to debug, no isolation."""

from __future__ import annotations

from typing import Sequence

from harness.engine.plugins import Registry
from harness.engine.runner import Outcome, execute
from harness.engine.spec import BenchmarkSpec
from harness.engine.timing import HOST, Timebase


class InlineLauncher:
    """Calls :func:`harness.engine.runner.execute` directly.

    Thread settings are applied by the backends in ``prepare`` and persist in
    this process; a hang, crash or memory limit is not enforced here. Use the
    subprocess launcher for real measurements.
    """

    name = "inline"

    def __init__(self, registry: Registry | None = None, timebase: Timebase = HOST) -> None:
        self.registry = registry
        self.timebase = timebase

    def launch(self, spec: BenchmarkSpec, *, keep_alive: Sequence[int] = ()) -> Outcome:
        return execute(spec, self.registry or Registry(), timebase=self.timebase)
