"""Benchmarks of the harness itself (pytest-benchmark). Run with ``make bench``.

These measure what the harness costs, so a user knows what part of a reported
latency is ours and how long bakeoff keeps expensive hardware busy: run-loop
overhead, worker start-up, record writes, loading and comparing, reports,
time to a stable result, and agreement with independent timers. Each test
adds its headline figure to ``figures``; the table of them, with each goal
and whether it was met, is printed at the end of the run (and is what
docs/performance.md records).
"""

import os
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parent.parent / "tests" / "plugins"
sys.path.insert(0, str(PLUGINS))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")]))

_FIGURES: list[dict] = []


@pytest.fixture
def figures():
    """``figures.add(name, value, unit, goal=None, met=None)``: a headline number for the summary."""

    class Figures:
        def add(self, name: str, value: float | str, unit: str, goal: str | None = None, met: bool | None = None):
            _FIGURES.append({"name": name, "value": value, "unit": unit, "goal": goal, "met": met})

    return Figures()


def pytest_configure(config):
    config.addinivalue_line("markers", "roofline: LLM decode vs the membw roofline (minutes; make bench-roofline)")


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("bakeoff harness figures")
    width = max(len(f["name"]) for f in _FIGURES)
    for f in _FIGURES:
        verdict = "" if f["met"] is None else ("  goal met" if f["met"] else "  GOAL MISSED")
        goal = f"  (goal: {f['goal']})" if f["goal"] else ""
        value = f["value"] if isinstance(f["value"], str) else f"{f['value']:.4g}"  # a str: "a / b", formatted
        write(f"{f['name']:<{width}}  {value:>12} {f['unit']}{goal}{verdict}")
