"""The launcher protocol."""

from __future__ import annotations

from typing import Protocol

from harness.runner import Outcome
from harness.spec import BenchmarkSpec


class Launcher(Protocol):
    """Runs one benchmark somewhere and always returns an :class:`Outcome`."""

    name: str

    def launch(self, spec: BenchmarkSpec) -> Outcome:
        ...
