"""Cost per token: two pricing models, as pure functions.

* **cloud rental**: you pay per device-hour whether busy or not, so
  ``cost per 1M tokens = $/device-hour / (tokens/s x 3600) x 1e6``
  (SemiAnalysis's formula, peers.md).
* **owned**: the landed purchase price (list x (1 + import duty) x (1 + grey-market
  premium), for markets where a part arrives through a third country) is amortised over
  the hours the device actually serves: the years of the horizon less the lead time
  until it arrives, ``(years - lead_months / 12) x 8760 x utilisation``. Hosting
  ($/device-year) likewise, and energy (the device's watts plus its share of the host's)
  is paid for the serving hours:
  ``$/serving-hour = landed / serving hours + hosting / (8760 x U)
  + (watts + host overhead) / 1000 x PUE x $/kWh``.

Throughput is per device. Non-token workloads are priced per 1k units
(images, sequences). Every result keeps its inputs, and energy not measured
by a meter is labelled ``estimated`` (from the catalog's TDP).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

HOURS_PER_YEAR = 8760.0


def units_per_price(unit: str) -> tuple[float, str]:
    """How many units a price is quoted for: 1M tokens, else 1k of the unit."""
    return (1e6, "1M tokens") if unit == "token" else (1e3, f"1k {unit}s")


def cost_per_units(usd_per_hour: float, units_per_s: float, unit: str) -> float:
    """$ per 1M tokens (or per 1k other units) at a device's hourly cost and throughput."""
    if units_per_s <= 0:
        raise ValueError(f"throughput must be > 0, got {units_per_s}")
    scale, _ = units_per_price(unit)
    return usd_per_hour / (units_per_s * 3600.0) * scale


@dataclass(frozen=True)
class OwnedInputs:
    purchase_usd: float
    years: float
    utilisation: float
    watts: float
    watts_estimated: bool
    usd_per_kwh: float
    pue: float
    hosting_usd_per_year: float = 0.0
    #: Constrained markets: duty and grey-market premium as fractions of the list price (0.25:
    #: 25%), months from order until the device serves, and the host's watts per device.
    import_duty: float = 0.0
    grey_market_premium: float = 0.0
    lead_time_months: float = 0.0
    host_overhead_w: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.utilisation <= 1:
            raise ValueError(f"utilisation {self.utilisation} must be in (0, 1]")
        if self.years <= 0 or self.pue < 1 or self.purchase_usd < 0 or self.watts < 0:
            raise ValueError("years must be > 0, PUE >= 1, price and watts >= 0")
        if self.import_duty < 0 or self.grey_market_premium < 0 or self.host_overhead_w < 0:
            raise ValueError("import duty, grey-market premium and host overhead must be >= 0")
        if not 0 <= self.lead_time_months < self.years * 12:
            raise ValueError(f"lead time {self.lead_time_months} months must be >= 0 and shorter than the "
                             f"{self.years:g}-year horizon")

    @property
    def landed_usd(self) -> float:
        """The purchase price with import duty and grey-market premium."""
        return self.purchase_usd * (1 + self.import_duty) * (1 + self.grey_market_premium)

    @property
    def serving_years(self) -> float:
        """The years of the horizon the device serves: it earns nothing until it arrives."""
        return self.years - self.lead_time_months / 12


def owned_usd_per_serving_hour(inputs: OwnedInputs) -> dict[str, float]:
    """The hourly cost of an owned device while it serves, by component."""
    serving_hours = inputs.serving_years * HOURS_PER_YEAR * inputs.utilisation
    parts = {
        "amortisation": inputs.landed_usd / serving_hours,
        "hosting": inputs.hosting_usd_per_year / (HOURS_PER_YEAR * inputs.utilisation),
        "energy": (inputs.watts + inputs.host_overhead_w) / 1000.0 * inputs.pue * inputs.usd_per_kwh,
    }
    parts["total"] = sum(parts.values())
    return parts


@dataclass(frozen=True)
class CostResult:
    model: str
    currency: str
    per: str
    value: float
    usd_per_device_hour: float
    inputs: dict[str, Any]
    estimated: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cloud_cost(units_per_s: float, unit: str, usd_per_device_hour: float, price_source: dict | None = None) -> CostResult:
    _, per = units_per_price(unit)
    return CostResult("cloud", "USD", per, cost_per_units(usd_per_device_hour, units_per_s, unit),
                      usd_per_device_hour, {"units_per_s": units_per_s, "price": price_source or {}}, False)


def owned_cost(units_per_s: float, unit: str, inputs: OwnedInputs) -> CostResult:
    hourly = owned_usd_per_serving_hour(inputs)
    _, per = units_per_price(unit)
    return CostResult("owned", "USD", per, cost_per_units(hourly["total"], units_per_s, unit), hourly["total"],
                      {"units_per_s": units_per_s, **asdict(inputs), "hourly_breakdown": hourly},
                      inputs.watts_estimated)
