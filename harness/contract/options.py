"""Backend options: runtime settings that change what is measured.

Graph capture (eager vs ``torch.compile`` vs a CUDA/ACL graph), an ONNX
Runtime execution provider's options, IOBinding: each changes the numbers, so
each is part of a benchmark's *identity*. Two records that differ in an
option never compare as equals, and every table labels the backend with its
non-default options (``torch[graph=compile]``).

A backend declares what it accepts as a class attribute ``OPTIONS`` (a mapping
of name to :class:`Option`) and may add device-specific checks in
``check_options(device, options)``. Validation happens while planning, before
anything runs: a bad option is a one-line error naming the backend, the key,
the value and what is allowed. Values equal to the default are dropped, so
``-O torch.graph=eager`` and no option at all are the same benchmark.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from harness.contract.errors import UserError

#: Option kinds and how an error message describes them.
KINDS = {"str": "a string", "bool": "true or false", "int": "an integer", "table": "a table of KEY = VALUE"}


@dataclass(frozen=True)
class Option:
    """One option a backend accepts."""

    kind: str
    default: Any = None
    choices: tuple[Any, ...] = ()
    help: str = ""

    def describe(self) -> str:
        allowed = ", ".join(str(c) for c in self.choices) if self.choices else KINDS[self.kind]
        default = f"; default {self.default}" if self.default not in (None, {}) else ""
        return f"{allowed}{default}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "default": self.default, "choices": list(self.choices), "help": self.help}


def _kind_ok(kind: str, value: Any) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "table":
        return isinstance(value, Mapping) and all(isinstance(k, str) for k in value)
    raise AssertionError(kind)


def validate(backend: str, declared: Mapping[str, Option], values: Mapping[str, Any], *,
             noun: str = "backend option") -> dict[str, Any]:
    """Check ``values`` against ``declared``; return them without default-valued entries.

    Raises :class:`UserError` naming ``backend.key`` (a scenario's name for its settings,
    with ``noun="scenario setting"``), the value and what is allowed.
    """
    normalized: dict[str, Any] = {}
    plural = noun.split()[-1] + "s"
    for key, value in values.items():
        if key not in declared:
            allowed = ", ".join(sorted(declared)) or "none"
            raise UserError(f"{noun} {backend}.{key}: unknown {noun.split()[-1]} ({plural} of {backend}: {allowed})")
        option = declared[key]
        if not _kind_ok(option.kind, value):
            raise UserError(f"{noun} {backend}.{key} = {value!r}: must be {KINDS[option.kind]}")
        if option.choices and value not in option.choices:
            raise UserError(f"{noun} {backend}.{key} = {value!r}: allowed: "
                            f"{', '.join(str(c) for c in option.choices)}")
        if option.kind == "table":
            value = {k: value[k] for k in sorted(value)}
            if not value:
                continue
        if value == option.default:
            continue
        normalized[key] = value
    return normalized


def variants(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Expand list values into one option set per combination (a sweep over options).

    ``{"graph": ["eager", "compile"]}`` gives two option sets. Tables are never
    expanded: a provider-options table is one value.
    """
    keys = list(values)
    axes = [values[k] if isinstance(values[k], list) else [values[k]] for k in keys]
    return [dict(zip(keys, combo)) for combo in itertools.product(*axes)]


def parse_value(text: str) -> Any:
    """A CLI value as TOML would read it (``true``, ``3``, ``"x"``), else the plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignments(items: Sequence[str], flag: str = "--backend-option",
                      form: str = "BACKEND.KEY=VALUE (e.g. torch.graph=compile, "
                                  "onnxruntime.provider_options.device_id=0)") -> dict[str, dict[str, Any]]:
    """``-O torch.graph=compile -O onnxruntime.provider_options.device_id=0`` to per-backend tables
    (and ``--scenario-option burst.size=8`` to per-scenario ones).

    A key given twice becomes a list, i.e. a sweep over both values.
    """
    per_backend: dict[str, dict[str, Any]] = {}
    for item in items:
        path, sep, text = item.partition("=")
        parts = [p.strip() for p in path.split(".")]
        if not sep or len(parts) < 2 or not all(parts):
            raise UserError(f"{flag} {item!r}: expected {form}")
        backend, key, *nested = parts
        value = parse_value(text.strip())
        table = per_backend.setdefault(backend, {})
        if nested:
            inner = table.setdefault(key, {})
            if not isinstance(inner, dict):
                raise UserError(f"{flag} {item!r}: {backend}.{key} is already set to a value")
            for part in nested[:-1]:
                inner = inner.setdefault(part, {})
            inner[nested[-1]] = value
        elif key in table:
            previous = table[key]
            table[key] = (previous if isinstance(previous, list) else [previous]) + [value]
        else:
            table[key] = value
    return per_backend


def freeze(options: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Options as nested sorted pairs, so a frozen spec stays hashable."""
    return tuple(sorted((k, freeze(v) if isinstance(v, Mapping) else v) for k, v in options.items()))


def thaw(options: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    return {k: thaw(v) if isinstance(v, tuple) and v and all(isinstance(p, tuple) and len(p) == 2 for p in v)
            else v for k, v in options}


def flatten(options: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"provider_options": {"device_id": 0}}`` to ``{"provider_options.device_id": 0}``."""
    flat: dict[str, Any] = {}
    for key, value in sorted(options.items()):
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def options_text(options: Mapping[str, Any] | None) -> str:
    """``graph=compile,compile_mode=reduce-overhead``; empty for default options."""
    return ",".join(f"{k}={v}" for k, v in flatten(options or {}).items())


def backend_label(spec: Mapping[str, Any]) -> str:
    """``torch`` or ``torch[graph=compile]``: the backend as every table names it."""
    text = options_text(spec.get("options"))
    return f"{spec['backend']}[{text}]" if text else str(spec["backend"])
