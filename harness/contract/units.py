"""Human-readable numbers with units, for tables. Pure functions."""

from __future__ import annotations

_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def sig3(value: float) -> str:
    """Three significant figures without scientific notation: 0.00412, 41.2, 1030."""
    if value == 0 or abs(value) >= 100:
        return f"{value:.0f}"
    text = f"{value:.3g}"
    return text if "e" not in text else f"{value:.3f}".rstrip("0").rstrip(".")


def format_seconds(seconds: float | None) -> str:
    """``0.000412`` -> ``412 µs``; three significant figures, unit chosen to fit."""
    if seconds is None:
        return "-"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(seconds) >= scale:
            return f"{sig3(seconds / scale)} {unit}"
    return f"{sig3(seconds / 1e-9)} ns"


def si_scale(value: float) -> tuple[float, str]:
    for scale, prefix in _SI:
        if abs(value) >= scale:
            return scale, prefix
    return 1.0, ""


def format_rate(value: float | None, unit: str | None) -> str:
    """``8.3e10, "FLOP/s"`` -> ``83.4 GFLOP/s``."""
    if value is None:
        return "-"
    scale, prefix = si_scale(value)
    return f"{sig3(value / scale)} {prefix}{unit or ''}".rstrip()


def format_interval(low: float | None, high: float | None, scale: float, suffix: str = "") -> str:
    if low is None or high is None:
        return ""
    return f"[{sig3(low / scale)}, {sig3(high / scale)}]{suffix}"


def format_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    for scale, unit in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if value >= scale:
            return f"{sig3(value / scale)} {unit}"
    return f"{value} B"


_BYTE_UNITS = {"": 1, "B": 1, "K": 1000, "KB": 1000, "KIB": 1 << 10, "M": 1000**2, "MB": 1000**2,
               "MIB": 1 << 20, "G": 1000**3, "GB": 1000**3, "GIB": 1 << 30, "T": 1000**4, "TB": 1000**4,
               "TIB": 1 << 40}


def parse_bytes(text: str | int) -> int:
    """``"512MiB"``, ``"4GB"``, ``"1.5GiB"`` or an integer, to bytes. ``ValueError`` otherwise."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a size")
    if isinstance(text, int):
        return text
    import re

    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    if not match or match.group(2).upper() not in _BYTE_UNITS:
        raise ValueError(f"{text!r} is not a size (examples: 512MiB, 4GiB, 2GB)")
    return int(float(match.group(1)) * _BYTE_UNITS[match.group(2).upper()])
