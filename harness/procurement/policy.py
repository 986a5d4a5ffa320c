"""Procurement policies: declarative rules over catalog fields, in small TOML files.

A policy is a list of rules; each names a catalog field and one test::

    schema_version = 1
    name = "EU sovereign inference"

    [[rules]]
    id = "no-us-licence-for-cn"
    why = "We deploy in China: no part that needs a US export licence there"
    field = "licence_required"
    no_licence_for = "CN"

Fields are the catalog's sourced figures and those computed by rule (``tpp < 4800`` is
``field = "tpp"``, ``max = 4799``; ``within_case_by_case_lane``, ``is = true``).
Tests: ``in`` / ``not_in`` (a list), ``equals``, ``min`` / ``max`` (numbers),
``is`` (true/false), ``no_licence_for`` (a destination), ``open_source``
(true: the software stack must be open source). A candidate whose catalog
entry lacks the field fails the rule ("unknown"): a procurement rule cannot
pass on a fact nobody has checked. Invalid policies are user errors naming
the file and rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from harness.contract.errors import UserError
from harness.files.tomlfile import read_toml
from harness.hardware.catalog import EXPORT_FIELDS, NUMERIC_FIGURES, TEXT_FIGURES
from harness.hardware.controls import DERIVED_FIGURES

TESTS = ("in", "not_in", "equals", "min", "max", "is", "no_licence_for", "open_source")
#: Sourced figures, and those computed by rule (``tpp``, ``performance_density``, and the
#: field each built-in export rule sets: ``eccn_3a090a``, ``within_case_by_case_lane``).
FIELDS = set(NUMERIC_FIGURES + TEXT_FIGURES + EXPORT_FIELDS + DERIVED_FIGURES
             + ("purchase_usd", "eccn_3a090a", "within_case_by_case_lane"))


@dataclass(frozen=True)
class Rule:
    id: str
    why: str
    field: str
    test: str
    value: Any

    def check(self, entry: Mapping[str, Any]) -> tuple[bool, str]:
        """(passes, explanation) for one catalog entry."""
        cell = entry.get(self.field)
        if not isinstance(cell, Mapping) or "value" not in cell:
            return False, f"{self.field} unknown in the catalog"
        value = cell["value"]
        if self.test == "in":
            ok = value in self.value
        elif self.test == "not_in":
            ok = value not in self.value
        elif self.test == "equals":
            ok = value == self.value
        elif self.test == "min":
            ok = value >= self.value
        elif self.test == "max":
            ok = value <= self.value
        elif self.test == "is":
            ok = value is self.value
        elif self.test == "no_licence_for":
            ok = not (value and self.value in cell.get("destinations", []))
        else:  # open_source
            ok = cell.get("open_source") is self.value
        shown = value if self.test != "open_source" else f"open_source={cell.get('open_source')}"
        return ok, f"{self.field} = {shown!r}"


@dataclass(frozen=True)
class Policy:
    name: str
    rules: tuple[Rule, ...]
    path: str

    def evaluate(self, entry: Mapping[str, Any] | None) -> list[str]:
        """Reasons the entry is excluded (empty: it passes)."""
        if entry is None:
            return ["device not in the catalog, so the policy cannot be checked"]
        return [f"policy rule {rule.id!r} ({rule.why}): {shown}" for rule, shown in self.failed_rules(entry)]

    def failed_rules(self, entry: Mapping[str, Any]) -> list[tuple[Rule, str]]:
        """Each rule the entry fails, with the value that failed it."""
        return [(rule, shown) for rule in self.rules for ok, shown in [rule.check(entry)] if not ok]


def load_policy(path: Path | str) -> Policy:
    path = Path(path)
    data = read_toml(path, "policy")
    if data.get("schema_version") != 1:
        raise UserError(f"{path}: schema_version = {data.get('schema_version')!r}, expected 1")
    unknown = set(data) - {"schema_version", "name", "description", "rules"}
    if unknown:
        raise UserError(f"{path}: unknown key {sorted(unknown)[0]!r} (allowed: schema_version, name, description, rules)")
    rules = []
    for index, raw in enumerate(data.get("rules", [])):
        rule_id = raw.get("id") or f"rules[{index}]"
        at = f"{path}: rule {rule_id!r}"
        if raw.get("field") not in FIELDS:
            raise UserError(f"{at}: field {raw.get('field')!r} is not a catalog field "
                            f"(allowed: {', '.join(sorted(FIELDS))})")
        tests = [t for t in TESTS if t in raw]
        extra = set(raw) - set(TESTS) - {"id", "why", "field"}
        if extra:
            raise UserError(f"{at}: unknown key {sorted(extra)[0]!r} (tests: {', '.join(TESTS)})")
        if len(tests) != 1:
            raise UserError(f"{at}: needs exactly one test of {', '.join(TESTS)}")
        test, value = tests[0], raw[tests[0]]
        expected = {"in": list, "not_in": list, "min": (int, float), "max": (int, float), "is": bool,
                    "open_source": bool, "no_licence_for": str}.get(test)
        if expected and (not isinstance(value, expected) or (test in ("min", "max") and isinstance(value, bool))):
            raise UserError(f"{at}: {test} = {value!r} has the wrong type")
        rules.append(Rule(rule_id, raw.get("why", ""), raw["field"], test, value))
    if not rules:
        raise UserError(f"{path}: a policy needs at least one [[rules]] entry")
    return Policy(data.get("name", path.stem), tuple(rules), str(path))
