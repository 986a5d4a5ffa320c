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
