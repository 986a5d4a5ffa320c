"""Export-control figures computed by rule, not typed in as text.

BIS defines the thresholds of ECCN 3A090 on two derived figures:

* **TPP** (total processing performance) = 2 x MacTOPS x bit length, the maximum over the
  precisions the part supports. A multiply-accumulate is two operations, so it is the dense
  TOPS at a precision times its bit length: ``16 x fp16_dense_tflops`` or
  ``8 x int8_dense_tops``, whichever is larger (``../shared/research/catalog.md``, S25d);
* **PD** (performance density) = TPP / die area (mm2), when the die area is sourced.

The tests themselves are data: ``harness/data/export_rules.toml`` holds each rule with its
source and effective date, as ``[[export_rule]]`` tables of clauses (a rule holds when any
clause holds; a clause when all its conditions hold), so the next revision is a new table,
in that file or in a user's ``--catalog`` file, not new code. Each rule sets a derived
field (``eccn_3a090a``, ``within_case_by_case_lane``) that policies may test like any other.
A figure that cannot be computed (an input unknown) stays absent, with the reason.
Pure functions over catalog entries.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

#: The figures a rule's conditions may name, besides the derived ``tpp`` and ``performance_density``.
CONDITION_INPUTS = ("tpp", "performance_density", "memory_bandwidth_gbps", "memory_gb", "fp16_dense_tflops",
                    "int8_dense_tops", "die_area_mm2")
DERIVED_FIGURES = ("tpp", "performance_density")


def _figure(entry: Mapping[str, Any], name: str) -> float | None:
    cell = entry.get(name)
    value = cell.get("value") if isinstance(cell, Mapping) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def tpp(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """The entry's TPP with the inputs it came from, or None without a dense FP16 or INT8 figure."""
    candidates = []
    fp16, int8 = _figure(entry, "fp16_dense_tflops"), _figure(entry, "int8_dense_tops")
    if fp16 is not None:
        candidates.append((16 * fp16, f"16 bits x {fp16:g} dense FP16 TFLOPS"))
    if int8 is not None:
        candidates.append((8 * int8, f"8 bits x {int8:g} dense INT8 TOPS"))
    if not candidates:
        return None
    value, basis = max(candidates)
    return {"value": value, "source": "D", "basis": f"TPP = 2 x MacTOPS x bit length = {basis}",
            "inputs": {k: entry[k] for k in ("fp16_dense_tflops", "int8_dense_tops") if k in entry}}


def performance_density(entry: Mapping[str, Any], total: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """TPP / die area, or None without both."""
    area = _figure(entry, "die_area_mm2")
    if total is None or area is None:
        return None
    return {"value": total["value"] / area, "source": "D",
            "basis": f"PD = TPP {total['value']:g} / die area {area:g} mm2",
            "inputs": {"tpp": total["value"], "die_area_mm2": entry["die_area_mm2"]}}


def _condition(name: str, limit: float, figures: Mapping[str, float | None]) -> tuple[bool | None, str]:
    """One condition (``tpp_at_least = 4800``, ``memory_bandwidth_gbps_below = 6500``)."""
    test = "at_least" if name.endswith("_at_least") else "below"
    figure = name.removesuffix("_at_least") if test == "at_least" else name.removesuffix("_below")
    value = figures.get(figure)
    if value is None:
        return None, f"{figure} unknown"
    holds = value >= limit if test == "at_least" else value < limit
    return holds, f"{figure} {value:g} {'>=' if test == 'at_least' else '<'} {limit:g}" + ("" if holds else " fails")


def evaluate_rule(rule: Mapping[str, Any], figures: Mapping[str, float | None]) -> dict[str, Any]:
    """``{value: True/False/None, reason}``: whether any clause of ``rule`` holds for ``figures``."""
    verdicts, reasons = [], []
    for clause in rule["when"]:
        results = [_condition(name, limit, figures) for name, limit in clause.items()]
        if all(r is True for r, _ in results):
            verdict = True
        elif any(r is False for r, _ in results):
            verdict = False
        else:
            verdict = None
        verdicts.append(verdict)
        reasons.append(" and ".join(text for _, text in results))
    value = True if True in verdicts else (None if None in verdicts else False)
    return {"value": value, "reason": "; or ".join(reasons)}


def rule_problem(rule: Mapping[str, Any], sources: Mapping[str, str], reserved: frozenset = frozenset()) -> str | None:
    """What is wrong with one ``[[export_rule]]`` table, or None. ``reserved``: the catalog's own
    field names, which a rule may not overwrite."""
    for key in ("field", "name", "effective", "source"):
        if not isinstance(rule.get(key), str):
            return f"export_rule {rule.get('field', '?')!r}: {key} must be a string"
    if rule["source"] not in sources:
        return f"export_rule {rule['field']!r}: source {rule['source']!r} is not in [sources]"
    if rule["field"] in reserved:
        return (f"export_rule {rule['field']!r}: field would overwrite a sourced or derived catalog figure; "
                "give the rule a field of its own")
    clauses = rule.get("when")
    if not isinstance(clauses, list) or not clauses:
        return f"export_rule {rule['field']!r}: needs at least one [[export_rule.when]] clause"
    for clause in clauses:
        if not isinstance(clause, Mapping) or not clause:
            return f"export_rule {rule['field']!r}: each [[export_rule.when]] clause needs at least one condition"
        for name, limit in clause.items():
            figure = name.removesuffix("_at_least").removesuffix("_below")
            if figure == name or figure not in CONDITION_INPUTS:
                return (f"export_rule {rule['field']!r}: condition {name!r}: allowed: FIGURE_at_least or "
                        f"FIGURE_below, FIGURE one of {', '.join(CONDITION_INPUTS)}")
            if isinstance(limit, bool) or not isinstance(limit, (int, float)):
                return f"export_rule {rule['field']!r}: {name} = {limit!r} must be a number"
    unknown = set(rule) - {"field", "name", "effective", "source", "when", "note"}
    if unknown:
        return f"export_rule {rule['field']!r}: unknown key {sorted(unknown)[0]!r}"
    return None


def derive(entry: Mapping[str, Any], rules: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The derived cells of one entry: ``tpp``, ``performance_density`` and one per rule, each
    ``{value, source: "D", basis/reason, ...}``; a figure that cannot be computed is absent."""
    cells: dict[str, dict[str, Any]] = {}
    total = tpp(entry)
    density = performance_density(entry, total)
    for name, cell in (("tpp", total), ("performance_density", density)):
        if cell is not None:
            cells[name] = cell
    figures = {name: _figure({**entry, **cells}, name) for name in CONDITION_INPUTS}
    for rule in rules:
        verdict = evaluate_rule(rule, figures)
        if verdict["value"] is not None:
            cells[rule["field"]] = {"value": verdict["value"], "source": "D", "rule": rule["name"],
                                    "effective": rule["effective"], "rule_source": rule["source"],
                                    "reason": verdict["reason"]}
    return cells


def classification_disagreement(entry: Mapping[str, Any], cells: Mapping[str, Any]) -> str | None:
    """A warning when the typed ``export_classification`` contradicts the computed 3A090.a test."""
    typed = entry.get("export_classification")
    computed = cells.get("eccn_3a090a")
    if not isinstance(typed, Mapping) or computed is None:
        return None
    text = str(typed.get("value", "")).lower()
    says_in = "3a090.a" in text and "below" not in text
    says_below = "below 3a090" in text or "not 3a090" in text
    if says_in and computed["value"] is False:
        return (f"{entry['id']}: export_classification says {typed['value']!r}, but the 3A090.a rule computes "
                f"below it ({computed['reason']})")
    if says_below and computed["value"] is True:
        return (f"{entry['id']}: export_classification says {typed['value']!r}, but the 3A090.a rule computes "
                f"it is caught ({computed['reason']})")
    return None
