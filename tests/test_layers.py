"""The import rule between harness's layers (docs/architecture.md, "Layers").

Each layer is a subpackage of harness/. A layer imports only the layers below it, so a
reader knows where to go and what a change can break:

* the plugin contract imports nothing else of harness (a plugin author reads one package);
* the readers of results (the record and the flat table, procurement, the tables, report
  and interop) never import the engine or orchestration that produced them, so a run
  folder is read, compared, ranked and reported on any machine from its files alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parent.parent / "harness"

#: Lowest first. A layer may import the layers before it in this list, and itself.
LAYERS = ("contract", "analysis", "files", "hardware", "engine", "results", "orchestration", "tools", "procurement",
          "presentation")
#: Beside the stack: the conformance kit (``harness.testing``) may import up to orchestration.
SIDE = {"testing": "orchestration"}
#: Modules that read (or derive) records and must work from the files alone.
READERS = ("harness.results.record", "harness.results.derive", "harness.results.frame", "harness.results.roofline",
           "harness.procurement", "harness.presentation.tables", "harness.presentation.report",
           "harness.presentation.interop")
PRODUCERS = ("harness.engine", "harness.orchestration")


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


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None  # ``harness`` itself: the public API, above every layer


def _in(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == name or module.startswith(name + ".") for name in prefixes)


MODULES = {_module(path): _imports(path) for path in HARNESS.rglob("*.py")}


def test_every_module_of_harness_sits_in_a_layer():
    homeless = sorted(m for m in MODULES if _layer(m) not in (*LAYERS, *SIDE, None))
    assert not homeless, f"modules outside every layer (docs/architecture.md): {homeless}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m)))
def test_a_layer_imports_only_the_layers_below_it(module):
    layer = _layer(module)
    ceiling = LAYERS.index(SIDE.get(layer, layer))
    allowed = set(LAYERS[:ceiling + 1]) | {layer}
    # ``from harness import __version__`` is the package's metadata, not a layer.
    above = sorted(name for name in MODULES[module] if name != "harness" and _layer(name) not in allowed)
    assert not above, f"{module} ({layer}) imports from layers above it: {above}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) == "contract"))
def test_the_plugin_contract_imports_nothing_else_of_harness(module):
    outside = sorted(name for name in MODULES[module] if _layer(name) != "contract")
    assert not outside, f"{module} (plugin contract) imports {outside}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _in(m, READERS)))
def test_readers_of_results_never_import_the_engine(module):
    producers = sorted(name for name in MODULES[module] if _in(name, PRODUCERS))
    assert not producers, f"{module} reads records but imports what produced them: {producers}"


def test_every_layer_is_populated_and_the_rule_sees_imports():
    assert all(any(_layer(m) == layer for m in MODULES) for layer in (*LAYERS, *SIDE))
    assert "harness.engine.scenarios" in MODULES["harness.engine.runner"]  # the scan reads real imports
    assert not any(path.suffix == ".py" for path in HARNESS.iterdir() if path.name not in ("__init__.py", "testing.py"))


#: Names readers give a record. A reader indexing one (``record["stats"]``, ``r.get("parity")``)
#: reads the JSON form by hand instead of the typed record.
_RECORD_NAMES = {"record", "r", "old", "cur", "rec"}
#: The modules that define the record's JSON form, and so may read it.
_RECORD_FORM = {"harness.results.record", "harness.results.derive"}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _in(m, READERS) or m.startswith("harness.presentation")))
def test_readers_read_records_through_the_typed_form(module):
    path = HARNESS.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = HARNESS.parent / module.replace(".", "/") / "__init__.py"
    by_hand = []
    for node in ast.walk(ast.parse(path.read_text())):
        target = (node.value if isinstance(node, ast.Subscript)
                  else node.func.value if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "get" else None)
        if isinstance(target, ast.Name) and target.id in _RECORD_NAMES and module not in _RECORD_FORM:
            by_hand.append(f"line {node.lineno}: {ast.unparse(node)[:60]}")
    assert not by_hand, f"{module} reads a record's JSON by hand (use harness.results.record): {by_hand}"
