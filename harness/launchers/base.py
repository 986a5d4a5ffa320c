"""The launcher protocol."""

from __future__ import annotations

from typing import Protocol, Sequence

from harness.runner import Outcome
from harness.spec import BenchmarkSpec


class Launcher(Protocol):
    """Runs one benchmark somewhere and always returns an :class:`Outcome`."""

    name: str

    def launch(self, spec: BenchmarkSpec, *, keep_alive: Sequence[int] = ()) -> Outcome:
        """``keep_alive``: file descriptors a worker process must inherit and hold until it dies
        (the run folder's lock); a launcher without a separate process ignores them."""
        ...
