"""Launchers decide *where* a benchmark runs; the runner decides *how* it is timed.

* ``subprocess`` (default): a fresh worker process per benchmark, with explicit
  thread settings. A crash, signal or hang in the worker becomes a failed
  outcome with its cause and the tail of its stderr; the sweep goes on.
* ``inline``: in this process, for debugging and tests. A crash here is a crash.
"""

from __future__ import annotations

from harness.contract.errors import UserError
from harness.orchestration.launchers.base import BatchLauncher, Launcher
from harness.orchestration.launchers.inline import InlineLauncher
from harness.orchestration.launchers.process import SubprocessLauncher

LAUNCHERS: dict[str, type] = {"subprocess": SubprocessLauncher, "inline": InlineLauncher}


def get_launcher(name: str) -> Launcher:
    try:
        return LAUNCHERS[name]()
    except KeyError:
        raise UserError(
            f"unknown launcher {name!r} (allowed: {', '.join(LAUNCHERS)})"
        ) from None


__all__ = ["BatchLauncher", "Launcher", "InlineLauncher", "SubprocessLauncher", "LAUNCHERS", "get_launcher"]
