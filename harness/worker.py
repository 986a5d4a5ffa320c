"""Worker entry point: ``python -m harness.worker SPEC_JSON OUTCOME_JSON``.

Runs exactly one benchmark with :func:`harness.runner.execute` and writes the
outcome atomically, so the parent either finds a complete file or none.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.results import atomic_write_json
from harness.runner import execute
from harness.spec import BenchmarkSpec


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m harness.worker SPEC_JSON OUTCOME_JSON", file=sys.stderr)
        return 2
    spec = BenchmarkSpec.from_dict(json.loads(Path(args[0]).read_text()))
    outcome = execute(spec)
    atomic_write_json(Path(args[1]), outcome.to_dict())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
