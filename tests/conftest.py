"""Shared fixtures.

``test_plugins`` installs the fake backends in tests/plugins for this process
*and* for worker subprocesses (via PYTHONPATH), the way a pip-installed plugin
would be found: through its dist-info entry points.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PLUGINS = REPO / "tests" / "plugins"


@pytest.fixture(autouse=True, scope="session")
def _isolated_export_cache(tmp_path_factory):
    """Exports go to a per-session cache, never the developer's ~/.cache."""
    previous = os.environ.get("BAKEOFF_CACHE_DIR")
    os.environ["BAKEOFF_CACHE_DIR"] = str(tmp_path_factory.mktemp("bakeoff-cache"))
    yield
    if previous is None:
        os.environ.pop("BAKEOFF_CACHE_DIR", None)
    else:
        os.environ["BAKEOFF_CACHE_DIR"] = previous


@pytest.fixture
def test_plugins(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    existing = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(PLUGINS), existing])))
    importlib.invalidate_caches()
    yield PLUGINS


@pytest.fixture
def results_dir(tmp_path):
    return tmp_path / "results"
