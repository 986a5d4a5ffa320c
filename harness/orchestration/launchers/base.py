"""The launcher protocol."""

from __future__ import annotations

from typing import Callable, Protocol, Sequence, runtime_checkable

from harness.engine.runner import Outcome
from harness.engine.spec import BenchmarkSpec


class Launcher(Protocol):
    """Runs one benchmark somewhere and always returns an :class:`Outcome`."""

    name: str

    def launch(self, spec: BenchmarkSpec, *, keep_alive: Sequence[int] = ()) -> Outcome:
        """``keep_alive``: file descriptors a worker process must inherit and hold until it dies
        (the run folder's lock); a launcher without a separate process ignores them."""
        ...


@runtime_checkable
class BatchLauncher(Protocol):
    """A launcher that runs many benchmarks at once (the Ray fleet, harness/orchestration/fleet.py).

    ``launch_all`` submits every spec and calls ``on_outcome(spec, outcome)`` on the
    driver as each finishes, in completion order. The sweep loop
    (:func:`harness.orchestration.sweep.run_sweep`) is the same for both kinds: it writes each record,
    records declared refusals without launching, and marks an interrupted run.
    """

    name: str

    def launch_all(self, specs: Sequence[BenchmarkSpec], on_outcome: Callable[[BenchmarkSpec, Outcome], None],
                   *, keep_alive: Sequence[int] = ()) -> None: ...
