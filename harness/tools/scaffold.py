"""``bakeoff new-backend NAME``: generate a pip-installable backend plugin package.

The package is a working CPU example from the first minute: it installs,
appears in ``bakeoff backends``, runs every built-in workload and passes the
conformance suite (``harness.testing``) unchanged. Its author then replaces
the parts marked ``ACCELERATOR`` with their runtime's calls, with the suite
telling them when a contract breaks. Templates live in
``harness/templates/new_backend``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from harness.contract.errors import UserError

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

#: Template file -> path inside the generated package (``{module}`` is filled in).
FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "__init__.py.tmpl": "src/{module}/__init__.py",
    "backend.py.tmpl": "src/{module}/backend.py",
    "test_conformance.py.tmpl": "tests/test_conformance.py",
}


@dataclass(frozen=True)
class PluginNames:
    name: str  # entry-point and backend name: acme-npu
    module: str  # import name: bakeoff_acme_npu
    class_name: str  # AcmeNpuBackend
    distribution: str  # bakeoff-acme-npu

    @classmethod
    def of(cls, name: str) -> "PluginNames":
        if not NAME_PATTERN.match(name):
            raise UserError(f"backend name {name!r}: use lowercase letters and digits, words joined by "
                            "single hyphens, starting with a letter (e.g. acme or acme-npu)")
        words = name.split("-")
        return cls(name, "bakeoff_" + "_".join(words), "".join(w.capitalize() for w in words) + "Backend",
                   f"bakeoff-{name}")


def render(text: str, names: PluginNames, bakeoff_version: str) -> str:
    return (text.replace("__NAME__", names.name).replace("__MODULE__", names.module)
            .replace("__CLASS__", names.class_name).replace("__BAKEOFF_VERSION__", bakeoff_version))


def new_backend(name: str, parent: Path, installed_backends: list[str] | None = None) -> Path:
    """Write the plugin package ``parent/bakeoff-NAME``; returns its folder.

    :class:`UserError` for a bad name, a name an installed backend already
    uses, or a target folder that already exists (nothing is overwritten).
    """
    from harness import __version__

    names = PluginNames.of(name)
    if installed_backends and name in installed_backends:
        raise UserError(f"backend name {name!r} is already used by an installed backend "
                        f"(installed: {', '.join(installed_backends)}); choose another")
    target = parent / names.distribution
    if target.exists():
        raise UserError(f"{target} already exists; remove it or choose another --dir")
    # The minimum bakeoff version the plugin asks for: this one, without local or dev suffixes.
    version = re.match(r"\d+(\.\d+)*", __version__)
    bakeoff_version = version.group(0) if version and __version__ != "0+unknown" else "0.1"
    templates = resources.files("harness") / "templates" / "new_backend"
    for template, relative in FILES.items():
        path = target / relative.format(module=names.module)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render((templates / template).read_text(), names, bakeoff_version))
    return target
