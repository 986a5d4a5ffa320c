"""The hardware catalog: specs, provenance, export-control facts and public prices.

A TOML data file ships with bakeoff (``harness/data/catalog.toml``); users layer
their own files over it (later files add entries and replace entries with the
same ``id``), e.g. with negotiated prices and internal hardware. Every figure
is ``{value, source, as_of}``, export-control facts need a source, and an
unknown stays absent: :func:`lint` enforces this, and loading a catalog that
fails the lint is a :class:`UserError` naming the file, entry and field.
Files are parsed as TOML only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.contract.errors import UserError
from harness.files.tomlfile import read_toml

CATALOG_SCHEMA_VERSION = 1
NUMERIC_FIGURES = ("memory_gb", "memory_bandwidth_gbps", "fp16_dense_tflops", "int8_dense_tops", "tdp_w",
                   "purchase_usd", "die_area_mm2")
TEXT_FIGURES = ("vendor", "vendor_hq_country", "designer_country", "foundry", "foundry_country", "process_node",
                "hbm_supplier", "memory_type", "software_stack")
EXPORT_FIELDS = ("export_regime", "export_classification", "licence_required", "named_in_guidance")
IDENTITY = ("id", "name", "kind", "match", "prices", "vcpu_prices")
ALLOWED_KEYS = set(NUMERIC_FIGURES + TEXT_FIGURES + EXPORT_FIELDS + IDENTITY)
PRICE_KEYS = {"usd_per_device_hour", "instance", "region", "source_url", "retrieved"}
#: A CPU's reference cloud price: an instance's list price per vCPU-hour. A CPU candidate is
#: priced by the vCPUs it used (its threads) at this rate.
VCPU_PRICE_KEYS = {"usd_per_vcpu_hour", "instance", "vcpus", "region", "source_url", "retrieved"}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class Catalog:
    """Entries by id, each with its derived cells (``tpp``, ``performance_density`` and one per
    export rule: harness/hardware/controls.py) merged in beside its sourced figures."""

    entries: dict[str, dict[str, Any]]
    sources: dict[str, str]
    files: list[str] = field(default_factory=list)
    #: The export-control rules the derived fields were computed with (built-in, then the user's).
    rules: list[dict[str, Any]] = field(default_factory=list)
    #: Typed figures that contradict a computed one (``controls.classification_disagreement``).
    warnings: list[str] = field(default_factory=list)

    def match(self, device_model: str | None) -> dict[str, Any] | None:
        """The entry whose longest ``match`` pattern names the device model (case-insensitive).

        A pattern must stand as a whole model number: digits may not run on across either end,
        so "H20" does not take "NVIDIA H200" (a price, a policy verdict and a peak borrowed from
        a smaller device would all be wrong), while "910B" still takes "Ascend910B3", a variant.
        """
        if not device_model:
            return None
        model = device_model.lower()
        best, best_length = None, 0
        for entry in self.entries.values():
            for pattern in entry.get("match", []):
                if len(pattern) > best_length and _names_model(pattern.lower(), model):
                    best, best_length = entry, len(pattern)
        return best


def _names_model(pattern: str, model: str) -> bool:
    """Whether ``pattern`` occurs in ``model`` without a digit continuing it on either side."""
    if not pattern:
        return False
    before = r"(?<!\d)" if pattern[0].isdigit() else ""
    after = r"(?!\d)" if pattern[-1].isdigit() else ""
    return re.search(before + re.escape(pattern) + after, model) is not None


_DEVICE_COUNT = re.compile(r"^\s*(\d+)\s*[x×]\s*(.+)$")


def device_count(device_info: Mapping[str, Any] | None) -> int:
    """How many devices one candidate is: ``device_info["count"]``, else a leading ``8x`` in its
    model label (an endpoint labelled "8x Ascend 910B"), else 1."""
    info = device_info or {}
    if isinstance(info.get("count"), int) and info["count"] >= 1:
        return info["count"]
    match = _DEVICE_COUNT.match(str(info.get("model") or ""))
    return int(match.group(1)) if match and int(match.group(1)) >= 1 else 1


def figure(entry: Mapping[str, Any], name: str) -> Any:
    """The value of a figure, or ``None`` when the catalog does not know it."""
    cell = entry.get(name)
    return cell.get("value") if isinstance(cell, Mapping) else None


def lint(data: Mapping[str, Any], where: str, sources: Mapping[str, str] | None = None) -> list[str]:
    """Every problem in a catalog document, as ``file: entry field: what is wrong``."""
    problems: list[str] = []
    version = data.get("schema_version")
    if version != CATALOG_SCHEMA_VERSION:
        problems.append(f"{where}: schema_version = {version!r}, expected {CATALOG_SCHEMA_VERSION}")
    known_sources = {**(sources or {}), **dict(data.get("sources", {}))}
    from harness.hardware.controls import rule_problem

    for rule in data.get("export_rule", []):
        problem = (rule_problem(rule, known_sources, frozenset(ALLOWED_KEYS) | {"tpp", "performance_density"})
                   if isinstance(rule, Mapping) else "export_rule must be a table")
        if problem:
            problems.append(f"{where}: {problem}")
    for index, entry in enumerate(data.get("hardware", [])):
        name = entry.get("id") or f"hardware[{index}]"
        at = f"{where}: hardware {name!r}"
        for key in ("id", "name", "kind"):
            if not isinstance(entry.get(key), str):
                problems.append(f"{at}: {key} must be a string")
        if not (isinstance(entry.get("match"), list) and all(isinstance(p, str) for p in entry["match"])):
            problems.append(f"{at}: match must be a list of device-model patterns")
        for key in entry:
            if key not in ALLOWED_KEYS:
                problems.append(f"{at}: unknown field {key!r}")
        for key in NUMERIC_FIGURES + TEXT_FIGURES + EXPORT_FIELDS:
            if key not in entry:
                continue  # unknown stays absent
            cell = entry[key]
            if not isinstance(cell, Mapping) or "value" not in cell:
                problems.append(f"{at} {key}: must be a table {{value, source, as_of}}")
                continue
            source = cell.get("source")
            if not source:
                problems.append(f"{at} {key}: missing source")
            elif source not in known_sources:
                problems.append(f"{at} {key}: source {source!r} is not in [sources]")
            if not (isinstance(cell.get("as_of"), str) and DATE.match(cell["as_of"])):
                problems.append(f"{at} {key}: as_of must be a YYYY-MM-DD date")
            value = cell["value"]
            if key in NUMERIC_FIGURES and (isinstance(value, bool) or not isinstance(value, (int, float))
                                           or value <= 0):
                problems.append(f"{at} {key}: value {value!r} must be a positive number")
        for table, required, numbers in (("prices", PRICE_KEYS, ("usd_per_device_hour",)),
                                         ("vcpu_prices", VCPU_PRICE_KEYS, ("usd_per_vcpu_hour", "vcpus"))):
            for p_index, price in enumerate(entry.get(table, [])):
                problems += _price_problems(f"{at} {table}[{p_index}]", price, required, numbers)
    return problems


def _price_problems(at: str, price: Mapping[str, Any], required: set[str], numbers: tuple[str, ...]) -> list[str]:
    """What is wrong with one price table: a missing key, a non-positive number, a bad date."""
    problems = []
    missing = required - set(price)
    if missing:
        problems.append(f"{at}: missing {', '.join(sorted(missing))}")
    for key in numbers:
        value = price.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            problems.append(f"{at}: {key} {value!r} must be a positive number")
    if "retrieved" in price and not DATE.match(str(price["retrieved"])):
        problems.append(f"{at}: retrieved must be a YYYY-MM-DD date")
    return problems


def builtin_text() -> str:
    return resources.files("harness").joinpath("data/catalog.toml").read_text(encoding="utf-8")


def builtin_rules_text() -> str:
    return resources.files("harness").joinpath("data/export_rules.toml").read_text(encoding="utf-8")


def load_catalog(extra: Iterable[Path | str] = ()) -> Catalog:
    """The built-in catalog and export rules with user files layered on top, linted, and every
    entry's derived figures computed (harness/hardware/controls.py)."""
    from harness.hardware.controls import classification_disagreement, derive

    documents = [("harness/data/export_rules.toml",
                  read_toml("harness/data/export_rules.toml", "catalog", builtin_rules_text())),
                 ("harness/data/catalog.toml", read_toml("harness/data/catalog.toml", "catalog", builtin_text()))]
    documents += [(str(path), read_toml(path, "catalog")) for path in extra]
    entries: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    rules: dict[str, dict[str, Any]] = {}
    for where, data in documents:
        problems = lint(data, where, sources)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise UserError(problems[0] + more)
        sources.update(data.get("sources", {}))
        for rule in data.get("export_rule", []):
            rules[rule["field"]] = rule  # a later revision of the same field replaces it
        for entry in data.get("hardware", []):
            entries[entry["id"]] = entry
    warnings = []
    for entry_id, entry in list(entries.items()):
        cells = derive(entry, list(rules.values()))
        entries[entry_id] = {**entry, **cells}
        disagreement = classification_disagreement(entry, cells)
        if disagreement:
            warnings.append(disagreement)
    return Catalog(entries, sources, [where for where, _ in documents][1:], list(rules.values()), warnings)
