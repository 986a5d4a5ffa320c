"""Run benchmarks in the calling process: fast to start, easy to debug, no isolation."""

from __future__ import annotations

from harness.plugins import Registry
from harness.runner import Clock, DEFAULT_CLOCK, Outcome, execute
from harness.spec import BenchmarkSpec


class InlineLauncher:
    """Calls :func:`harness.runner.execute` directly.

    Thread settings are applied by the backends in ``prepare`` and persist in
    this process; a hang or a crash takes the caller down with it. Use the
    subprocess launcher for real measurements.
    """

    name = "inline"

    def __init__(self, registry: Registry | None = None, clock: Clock = DEFAULT_CLOCK) -> None:
        self.registry = registry
        self.clock = clock

    def launch(self, spec: BenchmarkSpec) -> Outcome:
        return execute(spec, self.registry or Registry(), clock=self.clock)
