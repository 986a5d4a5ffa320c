"""The import rule between harness's layers (docs/architecture.md, "Layers"): the plugin contract
imports nothing else of harness, and the readers of results (procurement, presentation) never
import the engine that produced them, so they work on any machine from the files alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parent.parent / "harness"

#: The layers, lowest first. A module not listed belongs to no rule.
CONTRACT = {"harness.interface", "harness.capabilities", "harness.errors", "harness.limits"}
ENGINE = {"harness.runner", "harness.timing", "harness.scenarios", "harness.sweep", "harness.worker",
          "harness.launchers", "harness.fleet", "harness.telemetry", "harness.generation", "harness.parity"}
READERS = {"harness.record", "harness.rank", "harness.cost", "harness.policy", "harness.catalog",
           "harness.plausibility", "harness.compare", "harness.report", "harness.tables", "harness.interop",
           "harness.roofline", "harness.frame"}


def _module(path: Path) -> str:
    parts = path.relative_to(HARNESS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every harness module ``path`` imports, at top level or inside a function, but not
    under ``if TYPE_CHECKING:`` (annotations only, never executed)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("harness")}
    return found


def _in(module: str, layer: set[str]) -> bool:
    return any(module == name or module.startswith(name + ".") for name in layer)


MODULES = {_module(path): _imports(path) for path in HARNESS.rglob("*.py")}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _in(m, CONTRACT)))
def test_the_plugin_contract_imports_nothing_else_of_harness(module):
    outside = sorted(name for name in MODULES[module] if not _in(name, CONTRACT))
    assert not outside, f"{module} (plugin contract) imports {outside}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _in(m, READERS)))
def test_readers_of_results_never_import_the_engine(module):
    engine = sorted(name for name in MODULES[module] if _in(name, ENGINE))
    assert not engine, f"{module} reads records but imports the engine: {engine}"


def test_every_layer_is_populated_and_the_rule_sees_imports():
    assert all(any(_in(m, layer) for m in MODULES) for layer in (CONTRACT, ENGINE, READERS))
    assert "harness.scenarios" in MODULES["harness.runner"]  # the scan reads real imports
