"""Benchmarks of the harness itself (pytest-benchmark). Run with ``make bench``.

These measure what the harness costs, so a user knows what part of a reported
latency is ours: the per-iteration overhead of the run loop, the cost of
statistics and records, and the start-up cost of an isolated worker.
"""

import os
import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parent.parent / "tests" / "plugins"
sys.path.insert(0, str(PLUGINS))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")]))
