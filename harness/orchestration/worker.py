"""Worker entry point: ``python -m harness.orchestration.worker SPEC_JSON OUTCOME_JSON``.

Runs exactly one benchmark with :func:`harness.engine.runner.execute` and writes the
outcome atomically, so the parent either finds a complete file or none.

Before anything else it puts itself in bounds (harness/orchestration/launchers/isolation.py):
it dies with its launcher, and it enters its memory cgroup or sets its own
``RLIMIT_DATA``, before any runtime is imported.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _bounds(spec_data: dict) -> dict:
    """Apply the parent-death guard and the memory limit; returns what is in force, for the record."""
    from harness.orchestration.launchers import isolation

    parent = os.environ.get(isolation.PARENT_PID_ENV)
    lifeline = os.environ.get(isolation.LIFELINE_FD_ENV)
    facts: dict = {"parent_death": isolation.die_with_parent(int(parent) if parent else None,
                                                             int(lifeline) if lifeline else None)}
    limit = spec_data.get("memory_limit_bytes")
    cgroup = os.environ.get(isolation.CGROUP_ENV)
    if limit:
        if cgroup:
            try:
                isolation.enter_cgroup(cgroup)
                facts["memory_limit"] = {"bytes": limit, "mechanism": isolation.CGROUP_MECHANISM, "cgroup": cgroup}
            except OSError as exc:
                cgroup, facts["memory_limit_cgroup_error"] = None, f"{cgroup}: {exc.strerror}"
        if not cgroup:
            try:
                isolation.limit_own_memory(limit)
                facts["memory_limit"] = {"bytes": limit, "mechanism": isolation.RLIMIT_MECHANISM}
            except (OSError, ValueError) as exc:
                facts["memory_limit"] = {"bytes": limit, "mechanism": None,
                                         "reason": f"cannot set RLIMIT_DATA ({exc}); not enforced"}
    return facts


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m harness.orchestration.worker SPEC_JSON OUTCOME_JSON", file=sys.stderr)
        return 2
    spec_data = json.loads(Path(args[0]).read_text())
    bounds = _bounds(spec_data)

    from harness.engine.runner import execute
    from harness.engine.spec import BenchmarkSpec
    from harness.files.atomic import atomic_write_json

    outcome = execute(BenchmarkSpec.from_dict(spec_data))
    outcome.details = {**(outcome.details or {}), "isolation": bounds}
    if outcome.memory is None:  # a failure still says how much memory the worker had reached
        from harness.engine.runner import host_peak_memory

        outcome.memory = host_peak_memory()
    atomic_write_json(Path(args[1]), outcome.to_dict())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
